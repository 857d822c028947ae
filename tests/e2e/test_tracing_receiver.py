"""
One trace across the provider and the agent, as a real receiver (Phoenix, over OTLP/HTTP) stores it.

A compact stage runs against the reference agent in its own process (exporting its spans itself) behind
the fault proxy, which cuts the first stream and answers one ``tasks/get`` with 429 and ``Retry-After``.
The receiver must hold: our ``invoke_agent`` span under the caller's span, the events of what happened
(the cut, the resubscription, the 429), the agent's server spans under ours (``traceparent`` crossed
the wire) with its work under the send, the token usage, and no credential anywhere.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from opentelemetry import trace

from agentvault_stack import tracing_viewer
from agentvault_stack.testing.fault_proxy import FaultProxy, Match, cut_after_events, status
from airflow_agentvault.hooks.agentvault import forget_discoveries
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.protocol import tracing

import sdk_venv  # noqa: I001  (tests/thirdparty, put on the path by tests/integration/conftest.py)
from unit.fakes import FakeTaskStateStore, make_context, set_connection

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

API_KEY = "trace-test-api-key-7f3a"


@pytest.fixture(scope="module")
def receiver():
    with tracing_viewer.running_viewer() as running:
        yield running


@pytest.fixture(scope="module")
def exporting(receiver):
    with tracing_viewer.exporting_spans(receiver.url):
        yield


@pytest.fixture
def agent(receiver, tmp_path):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "reference-agent",
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    proc, url = sdk_venv.start_server(
        [sys.executable, "-m", "agentvault_stack.agent", "--port", "{port}", "--api-key", API_KEY,
         "--work-seconds", "0.4", "--name", "Traced Agent"],
        cwd=tmp_path, ready_url="/agent-card.json", env={**os.environ, **env}, name="traced-agent",
    )
    try:
        yield url
    finally:
        sdk_venv.stop_server(proc)


def test_one_trace_from_the_caller_through_the_agent(receiver, exporting, agent, monkeypatch):
    forget_discoveries()
    with FaultProxy(agent) as proxy:
        proxy.add(cut_after_events(1, when=Match(stream=True)))
        proxy.add(status(429, retry_after=0.2, when=Match(rpc_method="tasks/get"), skip=1))
        set_connection(monkeypatch, "traced_agent", proxy.url + "/", password=API_KEY, auth_type="api_key",
                       dialect="auto")
        op = AgentVaultStageOperator(task_id="traced_stage", agentvault_conn_id="traced_agent", text="hello trace",
                                     timing={"verify_interval": 0.05, "sse_retry_delay": 0.05,
                                             "poll_interval": 0.05, "sse_attempts": 3})
        with trace.get_tracer("tests").start_as_current_span("airflow task (stand-in)") as outer:
            result = op.execute(make_context(FakeTaskStateStore()))
    assert result["state"] == "COMPLETED"
    assert result["metadata"]["usage"]["input_tokens"] == 2
    trace_id = format(outer.get_span_context().trace_id, "032x")

    def complete(spans):
        names = {s["name"] for s in spans if s["context"]["trace_id"] == trace_id}
        return {"agent.work", "tasks/send", "tasks/get"} <= names and any(n.startswith("invoke_agent") for n in names)

    spans = receiver.wait_for(complete, timeout=120)
    mine = [s for s in spans if s["context"]["trace_id"] == trace_id]
    by_id = {s["context"]["span_id"]: s for s in mine}
    (stage,) = [s for s in mine if s["name"].startswith("invoke_agent")]
    assert stage["name"] == "invoke_agent Traced Agent"
    assert by_id[stage["parent_id"]]["name"] == "airflow task (stand-in)"
    flat = flatten(stage["attributes"])
    assert flat["gen_ai.operation.name"] == "invoke_agent" and flat["agentvault.step"] == "stage"
    assert flat["gen_ai.agent.name"] == "Traced Agent" and flat["server.address"] == "127.0.0.1"
    assert flat["agentvault.task.state"] == "COMPLETED" and flat["gen_ai.usage.input_tokens"] == 2
    events = [e["name"] for e in stage["events"]]
    assert events[0] == tracing.SEND
    assert tracing.SUBSCRIPTION_END in events and events.count(tracing.SUBSCRIBE) >= 2  # the cut, then again
    assert tracing.DELIVERED == events[-1]
    (busy,) = [flatten(e["attributes"]) for e in stage["events"] if e["name"] == tracing.POLL_FAILED]
    assert busy["error.type"] == "AgentUnreachableError" and "429" in busy["agentvault.detail"]
    assert busy["agentvault.retry_after"] == pytest.approx(0.2)
    # the agent continued our trace: its server spans hang under our step span, its work under the send
    server = [s for s in mine if s["name"] in ("tasks/send", "tasks/get", "tasks/sendSubscribe")]
    assert server and all(s["parent_id"] == stage["context"]["span_id"] for s in server)
    (work,) = [s for s in mine if s["name"] == "agent.work"]
    assert by_id[work["parent_id"]]["name"] == "tasks/send"
    assert flatten(work["attributes"])["gen_ai.usage.output_tokens"] >= 1
    # no credential in anything the receiver stored
    assert API_KEY not in json.dumps(spans)


def flatten(attributes, prefix=""):
    """Phoenix nests dotted attribute names (``{"gen_ai": {"agent": {...}}}``): back to dotted keys."""
    flat = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
