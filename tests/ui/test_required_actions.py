"""
A person answers an agent's question in the Airflow UI: Debian's chromium, driven by Playwright, on a real Airflow.

A reference agent asks "Which mercury do you mean?" (options "the planet" and "the element") and an Airflow
(``AirflowStack``) runs a stage with ``ask_person=True``: its ``ask_person_1`` task waits in
``awaiting_input``. Then, in the browser, a person does what the UI offers: opens Browse > Required
Actions, finds the agent's question in the list, follows it to the task's Required Action tab, reads the
question and both options there and clicks "the planet". The answer goes back to the agent; through the
REST API the test checks the run succeeded and the stage's result holds the agent's final answer, the
question and the person's answer, and who gave it.

Elements are found by role and accessible name (read off the rendered page), every wait is bounded, and a
screenshot of each page goes to the test's ``tmp_path``. The browser is Debian's ``chromium`` (``bash
scripts/setup-tests.sh --browser`` installs it as root, and so does CI): never a browser build Playwright would
download.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from agentvault_stack.testing import AirflowStack
from airflow_agentvault.compat import AIRFLOW_V_3_3_PLUS
from airflow_agentvault.operators.ask_person import REJECT

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="awaiting_input came with Airflow 3.3")]

DAG_ID, TASK_ID, CONN_ID = "agentvault_ask_in_the_ui", "research.ask_person_1", "agentvault_default"
QUESTION, OPTIONS, CHOSEN = "Which mercury do you mean?", ("the planet", "the element"), "the planet"
SUBJECT = f"{CONN_ID} asks: {QUESTION}"
DAG = f'''
import pendulum
from airflow.sdk import DAG

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.stage import agent_stage

asks = {{"reference_agent": {{"questions": [{{"text": "{QUESTION}", "options": {list(OPTIONS)!r}}}]}}}}
with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params=timing_params("fast")):
    agent_stage("research", text="mercury", ask_person=True, max_rounds=1, message_metadata=asks)
'''


@pytest.fixture(scope="module")
def agent() -> Iterator[ReferenceAgentServer]:
    with ReferenceAgentServer(AgentBehaviour(work_seconds=0.4)) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory, agent) -> Iterator[AirflowStack]:
    dags = tmp_path_factory.mktemp("required-actions-dags")
    (dags / "ask_in_the_ui.py").write_text(DAG)
    conn = json.dumps({"conn_type": "agentvault", "host": agent.rpc_url})
    with AirflowStack(home=tmp_path_factory.mktemp("required-actions-airflow"), dags_folder=dags,
                      extra_env={f"AIRFLOW_CONN_{CONN_ID.upper()}": conn}) as running:
        running.wait_for_dag(DAG_ID, timeout=90)
        yield running


def wait_until_parked(stack: AirflowStack, run_id: str, task_id: str, timeout: float = 120) -> None:
    """The question waits in ``awaiting_input`` and the scheduler has seen the asking process end.

    As in ``tests/e2e/test_ask_person.py``: an answer faster than the scheduler's loop would race
    Airflow's check that a finished worker process left its task in a waiting state, so the person
    answers after the scheduler noticed, as a person would.
    """
    deadline = time.monotonic() + timeout
    state = None
    while (state := stack.task_states(DAG_ID, run_id).get(task_id)) != "awaiting_input":
        if state in ("failed", "upstream_failed") or time.monotonic() > deadline:
            raise AssertionError(f"{task_id} is {state}, not awaiting_input\n{stack.task_log(DAG_ID, run_id, task_id)}"
                                 f"\n{stack.diagnostics()}")
        time.sleep(0.3)
    finished = f"dag_id={DAG_ID}, task_id={task_id}, run_id={run_id}"
    while not any(finished in line and "state=awaiting_input" in line
                  for line in stack.component_log("scheduler").splitlines() if "TaskInstance Finished" in line):
        if time.monotonic() > deadline:
            raise AssertionError(f"the scheduler never saw {task_id} park\n{stack.diagnostics()}")
        time.sleep(0.3)


def test_a_person_answers_the_agents_question_under_required_actions(page, stack, tmp_path):
    from playwright.sync_api import expect

    run_id = stack.trigger(DAG_ID)
    wait_until_parked(stack, run_id, TASK_ID)
    user = page.request.get(f"{stack.api_url}/ui/auth/me").json()["username"]  # who the browser is signed in as
    assert user

    # Browse > Required Actions lists the agent's question
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Required Actions").click()
    expect(page).to_have_url(f"{stack.api_url}/required_actions")
    row = page.get_by_role("row").filter(has_text=SUBJECT)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(TASK_ID)
    expect(row).to_contain_text(run_id)
    expect(row).to_contain_text("Choice Required")
    page.screenshot(path=tmp_path / "required-actions.png", full_page=True)

    # its subject leads to the task instance's Required Action tab: the question and the agent's options
    row.get_by_role("link", name=SUBJECT).click()
    expect(page).to_have_url(f"{stack.api_url}/dags/{DAG_ID}/runs/{run_id}/tasks/{TASK_ID}/required_actions")
    expect(page.get_by_role("heading", name=TASK_ID, exact=True)).to_be_visible()
    expect(page.get_by_text(SUBJECT, exact=True)).to_be_visible()
    expect(page.get_by_role("blockquote").filter(has_text=QUESTION)).to_be_visible()
    for option in (*OPTIONS, REJECT):
        expect(page.get_by_role("button", name=option, exact=True)).to_be_visible()
    page.screenshot(path=tmp_path / "required-action.png", full_page=True)

    with page.expect_response(lambda r: r.request.method == "PATCH" and r.url.endswith("/hitlDetails")) as sent:
        page.get_by_role("button", name=CHOSEN, exact=True).click()
    said = f"PATCH {sent.value.url} -> {sent.value.status}: {sent.value.text()}"
    assert sent.value.ok, said
    # the page says the answer arrived, from whom, and takes no second one
    expect(page.get_by_role("status").filter(has_text=f"{TASK_ID} response successful"), said).to_be_visible()
    expect(page.get_by_text("Response received at")).to_contain_text(f"from {user}")
    for option in (*OPTIONS, REJECT):
        expect(page.get_by_role("button", name=option, exact=True)).to_be_disabled()
    page.screenshot(path=tmp_path / "answered.png", full_page=True)

    state = stack.wait_for_run(DAG_ID, run_id, timeout=180)
    assert state == "success", f"{stack.task_states(DAG_ID, run_id)}\n{stack.task_log(DAG_ID, run_id, TASK_ID)}"

    # the stage's result: the agent's final answer, with the question, the person's answer and who gave it
    result = stack.xcom(DAG_ID, run_id, TASK_ID)
    assert result["state"] == "COMPLETED" and "question" not in result
    assert f"Answers: {CHOSEN}" in result["text"]
    asked = result["metadata"]["questions"]
    assert [(r["question"], r["answer"]) for r in asked] == [(QUESTION, CHOSEN)]
    assert asked[0]["answered_by"] == user, asked

    # the list of Required Actions shows who answered
    page.goto(f"{stack.api_url}/required_actions")
    row = page.get_by_role("row").filter(has_text=SUBJECT)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Choice Received")
    expect(row).to_contain_text(user)
    page.screenshot(path=tmp_path / "required-actions-answered.png", full_page=True)
