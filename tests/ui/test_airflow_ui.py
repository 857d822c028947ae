"""
The Airflow UI as a person sees it: Debian's chromium, driven by Playwright, on a real Airflow.

A reference agent and an Airflow (``AirflowStack``) whose ``agentvault_default`` connection lives in the
metadata database, with "Test connection" enabled; the TaskFlow example DAG runs once. Then, in the
browser: the Connections page lists the connection, its "Test Connection" button reports the agent the
hook found, and the ``ask`` task instance offers the "Agent card" extra link to the agent's card.

Elements are found by role and accessible name (the UI is a React app; names read off the rendered
page): the row of the table holding the connection id, the row's button labelled "Test Connection",
the toast (role ``status``) with the result, the task instance's "Details" tab and its "Agent card"
link. A screenshot of each page goes to the test's ``tmp_path``.

The browser is Debian's ``chromium`` (``bash scripts/setup-tests.sh --browser`` installs it as root, and so
does CI): never a browser build Playwright would download.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from agentvault_stack.testing import AirflowStack

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_ID, TASK_ID, CONN_ID = "agentvault_taskflow", "ask", "agentvault_default"


@pytest.fixture(scope="module")
def agent() -> Iterator[ReferenceAgentServer]:
    with ReferenceAgentServer(AgentBehaviour(work_seconds=0.5)) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory, agent) -> Iterator[AirflowStack]:
    dags = tmp_path_factory.mktemp("ui-dags")
    (dags / "agentvault_taskflow.py").write_text((DAGS / "agentvault_taskflow.py").read_text())
    # The port repeats the URL's: the page's Test Connection button sends a missing port as 0, which
    # Airflow 3.3 refuses as "differs from the stored connection" (the hook itself reads the URL).
    conn = {"conn_type": "agentvault", "host": agent.rpc_url, "port": agent.port}
    with AirflowStack(home=tmp_path_factory.mktemp("ui-airflow"), dags_folder=dags,
                      extra_env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"},
                      connections={CONN_ID: conn}) as running:
        running.wait_for_dag(DAG_ID, timeout=90)
        yield running


@pytest.fixture(scope="module")
def run_id(stack) -> str:
    run = stack.trigger(DAG_ID, {"topic": "tidal energy"})
    state = stack.wait_for_run(DAG_ID, run, timeout=180)
    assert state == "success", f"{stack.task_states(DAG_ID, run)}\n{stack.diagnostics()}"
    return run


def test_the_connections_page_lists_and_tests_the_agent_connection(page, stack, agent, tmp_path):
    from playwright.sync_api import expect

    page.goto(f"{stack.api_url}/connections")
    row = page.get_by_role("row").filter(has_text=CONN_ID)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(agent.rpc_url)
    page.screenshot(path=tmp_path / "connections.png", full_page=True)

    with page.expect_response("**/api/v2/connections/test") as answer:
        row.get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text="Test Connection")
    expect(toast).to_be_visible()
    page.screenshot(path=tmp_path / "connection-tested.png", full_page=True)
    said = f"POST /api/v2/connections/test -> {answer.value.status}: {answer.value.text()}"
    expect(toast, said).to_contain_text("Test Connection Successful")
    expect(toast, said).to_contain_text(f"Found agent AgentVault Reference Agent v0.1.0 at {agent.rpc_url}")


def test_the_task_instance_offers_the_agent_card_link(page, stack, agent, run_id, tmp_path):
    from playwright.sync_api import expect

    page.goto(f"{stack.api_url}/dags/{quote(DAG_ID, safe='')}/runs/{quote(run_id, safe='')}/tasks/{TASK_ID}")
    expect(page.get_by_role("heading", name=TASK_ID, exact=True)).to_be_visible()
    page.screenshot(path=tmp_path / "task-instance.png", full_page=True)
    page.get_by_role("link", name="Details", exact=True).click()
    expect(page.get_by_role("heading", name="Extra Links")).to_be_visible()
    link = page.get_by_role("link", name="Agent card", exact=True)
    expect(link).to_be_visible()
    page.screenshot(path=tmp_path / "task-instance-details.png", full_page=True)
    expect(link).to_have_attribute("href", agent.card_url)
    # what the link shows is what the task stored for it
    assert stack.xcom(DAG_ID, run_id, TASK_ID, key="_link_AgentCardLink") == agent.card_url
