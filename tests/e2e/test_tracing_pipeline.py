"""
One trace per pipeline run: the 7-stage research pipeline under a real scheduler and triggerer, traced.

Airflow (``[traces] otel_on``), the provider and the seven research agents all export over OTLP/HTTP to
a real receiver (Phoenix). The extract stage's agent sits behind the fault proxy, which answers its
first ``tasks/get`` with 429 and ``Retry-After``; the agents stream tokens slowly enough that streams
are followed in the triggerer. Read back from the receiver: every stage step's ``invoke_agent`` span
hangs under Airflow's task or trigger span, in the run's one trace; the streams followed in the
triggerer are there; the agents' work continues that trace; the 429 is an event of the extract
stage's visibility wait; token usage is reported, and the report states the total.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentvault_stack import tracing_viewer
from agentvault_stack.agent.research import start_research_agents
from agentvault_stack.testing import PROVIDER_MODULES, AirflowStack
from agentvault_stack.testing.fault_proxy import FaultProxy, Match, status
from airflow_agentvault.pipelines.research import STAGE_IDS, connection_id
from airflow_agentvault.protocol import tracing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

DAGS = Path(__file__).resolve().parents[2] / "dags"
FAULTY = "extract"


@pytest.fixture(scope="module")
def receiver():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "thirdparty"))

    with tracing_viewer.running_viewer() as running:
        yield running


@pytest.fixture(scope="module")
def traced_run(receiver, tmp_path_factory):
    base = tmp_path_factory.mktemp("traced-research")
    with tracing_viewer.exporting_here(receiver.url) as otel, \
            start_research_agents(base_port=0, tokens_per_second=40) as agents, \
            FaultProxy(agents.urls[FAULTY].removesuffix("/a2a/")) as proxy:  # the agents export from this process
        proxy.add(status(429, retry_after=1.5, when=Match(rpc_method="tasks/get")))  # the first check
        urls = {**agents.urls, FAULTY: proxy.url + "/a2a/"}
        env = {f"AIRFLOW_CONN_{connection_id(stage).upper()}": json.dumps({"conn_type": "agentvault", "host": url})
               for stage, url in urls.items()}
        env.update(otel, **tracing_viewer.AIRFLOW_TRACING, AGENTVAULT_REPORTS_DIR=str(base / "reports"),
                   AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="True", OTEL_SERVICE_NAME="airflow")
        with AirflowStack(home=base / "home", dags_folder=DAGS, extra_env=env,
                          preload_modules=PROVIDER_MODULES) as stack:
            stack.wait_for_dag("research_pipeline", timeout=120)
            run_id = stack.trigger("research_pipeline", {"topic": "coral reef bleaching"})
            state = stack.wait_for_run("research_pipeline", run_id, timeout=900)
            assert state == "success", stack.task_states("research_pipeline", run_id)
            results = {s: stack.xcom("research_pipeline", run_id, f"{s}.stream") for s in STAGE_IDS}
            results["publish_report"] = stack.xcom("research_pipeline", run_id, "publish_report")
            yield results, proxy


def flatten(attributes, prefix=""):
    flat = {}
    for key, value in attributes.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_the_run_is_one_trace_with_every_stage_and_the_agents_work(receiver, traced_run):
    results, proxy = traced_run
    task_ids = {results[s]["task_id"]: s for s in STAGE_IDS}

    def streams_delivered(spans):
        delivered = {flatten(s["attributes"]).get("agentvault.task.id") for s in spans
                     if s["name"].startswith("invoke_agent") and "agentvault.delivered_by" in flatten(s["attributes"])}
        return set(task_ids) <= delivered and sum(s["name"] == "agent.work" for s in spans) >= len(STAGE_IDS)

    spans = receiver.wait_for(streams_delivered, timeout=180)
    by_id = {s["context"]["span_id"]: s for s in spans}
    steps = [s for s in spans if s["name"].startswith("invoke_agent")]
    followed = {flatten(s["attributes"])["agentvault.task.id"]: s for s in steps
                if "agentvault.delivered_by" in flatten(s["attributes"])}
    trace_ids = {s["context"]["trace_id"] for s in steps}
    assert len(trace_ids) == 1, f"one trace per run, got {len(trace_ids)}"
    for step in steps:  # each under Airflow's task or trigger span, never a root
        parent = by_id.get(step["parent_id"])
        assert parent is not None and not parent["name"].startswith("invoke_agent"), step["name"]
    in_triggerer = [s for s in followed.values() if flatten(s["attributes"])["agentvault.step"] == "stream.trigger"]
    assert in_triggerer and all(by_id[s["parent_id"]]["name"].startswith("trigger.") for s in in_triggerer)
    # the agents continued the run's trace: their work hangs under a send of ours
    works = [s for s in spans if s["name"] == "agent.work" and s["context"]["trace_id"] in trace_ids]
    assert len(works) >= len(STAGE_IDS)
    for work in works:
        send = by_id[work["parent_id"]]
        assert send["name"] == "tasks/send" and by_id[send["parent_id"]]["name"].startswith("invoke_agent")
    # the fault on the extract stage is an event of its visibility wait, with the agent's Retry-After
    busy = [(step, flatten(e["attributes"])) for step in steps for e in step["events"]
            if e["name"] == tracing.VISIBILITY_CHECK and "429" in flatten(e["attributes"])["agentvault.detail"]]
    assert len(busy) == 1, [e["name"] for s in steps for e in s["events"]]
    (step, event), = busy
    assert "extract" in by_id[step["parent_id"]]["name"] and event["agentvault.retry_after"] == 1.5
    assert event["error.type"] == "AgentUnreachableError" and event["agentvault.next_check_in"] >= 1.5
    # usage: on each stage's span and in its result; the report states the pipeline's total
    for stage in STAGE_IDS:
        usage = results[stage]["metadata"]["usage"]
        attributes = flatten(followed[results[stage]["task_id"]]["attributes"])
        assert attributes["gen_ai.usage.output_tokens"] == usage["output_tokens"] > 0
    total = sum(results[s]["metadata"]["usage"]["output_tokens"] for s in STAGE_IDS)
    info = results["publish_report"]
    assert info["usage"]["output_tokens"] == total
    report = Path(info["report"].removeprefix("file://").removeprefix("file:"))
    assert f"{info['usage']['input_tokens']} in, {total} out." in report.read_text()
