"""The trace viewer the demo's ``--trace`` starts shows a stage's trace: our span and the agent's, in one tree."""

from __future__ import annotations

import json
import urllib.request

import pytest
from opentelemetry import trace

from agentvault_stack import tracing_viewer
from agentvault_stack.agent.behaviour import AgentBehaviour
from agentvault_stack.agent.server import ReferenceAgentServer
from airflow_agentvault.hooks.agentvault import forget_discoveries
from airflow_agentvault.operators.stage import AgentVaultStageOperator

from unit.fakes import FakeTaskStateStore, make_context, set_connection

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

WAIT_MS = 30_000  # bound of every browser wait


@pytest.fixture(scope="module")
def viewer():
    with tracing_viewer.running_viewer() as running:
        yield running


def test_the_viewer_shows_the_stage_and_the_agents_work(viewer, browser, monkeypatch):
    from playwright.sync_api import expect

    forget_discoveries()
    with tracing_viewer.exporting_spans(viewer.url), \
            ReferenceAgentServer(AgentBehaviour(work_seconds=0.2), name="Viewed Agent") as agent:
        set_connection(monkeypatch, "viewed_agent", agent.url + "/", dialect="auto")
        op = AgentVaultStageOperator(task_id="viewed_stage", agentvault_conn_id="viewed_agent", text="show me",
                                     timing={"verify_interval": 0.05})
        with trace.get_tracer("tests").start_as_current_span("research run (stand-in)") as outer:
            assert op.execute(make_context(FakeTaskStateStore()))["state"] == "COMPLETED"
    trace_id = format(outer.get_span_context().trace_id, "032x")
    viewer.wait_for(lambda spans: {"agent.work", "invoke_agent Viewed Agent"}
                    <= {s["name"] for s in spans if s["context"]["trace_id"] == trace_id}, timeout=120)
    with urllib.request.urlopen(f"{viewer.url}/v1/projects", timeout=30) as answer:
        (project,) = [p for p in json.load(answer)["data"] if p["name"] == "default"]

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        page.goto(f"{viewer.url}/projects/{project['id']}")
        expect(page.get_by_text("research run (stand-in)").first).to_be_visible()
        page.get_by_text("research run (stand-in)").first.click()
        expect(page.get_by_text("invoke_agent Viewed Agent").first).to_be_visible()
        expect(page.get_by_text("agent.work").first).to_be_visible()
    finally:
        context.close()
