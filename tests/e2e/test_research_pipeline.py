"""
The research pipeline under a real scheduler, triggerer, dag-processor and API server on SQLite.

Runs the hand-written and the spec-built pipeline for the same topic against the seven reference
research agents, and checks every stage's result, the report and chart files, the asset event and
the consumer DAG it triggers, and the mapped pipeline over two topics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentvault_stack.agent.research import start_research_agents
from agentvault_stack.testing import PROVIDER_MODULES, AirflowStack
from airflow_agentvault.pipelines.research import STAGE_IDS, connection_id

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[2] / "dags"
TOPIC = "coral reef bleaching"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("research-stack")
    with start_research_agents(base_port=0) as agents:
        env = {
            f"AIRFLOW_CONN_{connection_id(stage).upper()}": json.dumps({"conn_type": "agentvault", "host": url})
            for stage, url in agents.urls.items()
        }
        env["AGENTVAULT_REPORTS_DIR"] = str(base / "reports")
        # As the demo runs it: the workers preload the provider (forkserver), so that setting is tested too.
        with AirflowStack(home=base / "home", dags_folder=DAGS, extra_env=env,
                          preload_modules=PROVIDER_MODULES) as running:
            for dag_id in ("research_pipeline", "research_pipeline_from_spec", "research_pipeline_mapped",
                           "research_report_consumer"):
                running.wait_for_dag(dag_id, timeout=120)
            running.unpause("research_report_consumer")
            yield running


def run(stack: AirflowStack, dag_id: str, conf: dict, timeout: float = 300) -> str:
    run_id = stack.trigger(dag_id, conf)
    state = stack.wait_for_run(dag_id, run_id, timeout=timeout)
    assert state == "success", f"{dag_id}: {stack.task_states(dag_id, run_id)}\n{failed_logs(stack, dag_id, run_id)}"
    return run_id


def failed_logs(stack: AirflowStack, dag_id: str, run_id: str) -> str:
    """The log of the first failed task, which says why the run failed."""
    for ti in stack.task_instances(dag_id, run_id):
        if ti["state"] == "failed":
            return stack.task_log(dag_id, run_id, ti["task_id"], map_index=ti.get("map_index", -1))[-4000:]
    return stack.diagnostics()


def local(location: str) -> Path:
    return Path(location.removeprefix("file://"))


@pytest.fixture(scope="module")
def hand_written(stack):
    return run(stack, "research_pipeline", {"topic": TOPIC})


def test_every_stage_completes_and_hands_its_result_on(stack, hand_written):
    results = {stage: stack.xcom("research_pipeline", hand_written, f"{stage}.stream") for stage in STAGE_IDS}
    assert all(r["state"] == "COMPLETED" for r in results.values())
    types = {stage: [a["type"] for a in r["artifacts"]] for stage, r in results.items()}
    assert "research_plan" in types["topic_research"] and "documents" in types["crawl"]
    assert "claims" in types["extract"] and "verification" in types["verify"]
    assert "report" in types["synthesize"] and "report" in types["edit"] and "chart" in types["visualize"]
    for stage in STAGE_IDS:
        assert stack.task_states("research_pipeline", hand_written)[f"{stage}.wait_until_visible"] == "success"


def test_report_and_chart_files_and_the_asset_event(stack, hand_written):
    info = stack.xcom("research_pipeline", hand_written, "publish_report")
    report = local(info["report"]).read_text()
    assert report.startswith("# ") and "Coral" in report and "## References" in report and "[1]" in report
    chart = local(info["chart"]).read_text()
    assert chart.lstrip().startswith("<svg") or "<svg" in chart[:200]
    rows = stack.query(
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.name = ? AND e.source_dag_id = ? AND e.source_run_id = ?",
        ("agentvault_research_report", "research_pipeline", hand_written),
    )
    assert len(rows) == 1
    extra = json.loads(rows[0]["extra"])
    assert extra["report"] == info["report"] and extra["chart"] == info["chart"] and extra["topic"] == TOPIC


def test_the_asset_event_triggers_the_consumer(stack, hand_written):
    import time

    deadline = time.monotonic() + 120
    runs: list = []
    while not runs:
        runs = [r for r in stack.api("GET", "dags/research_report_consumer/dagRuns")["dag_runs"]
                if r["state"] == "success"]
        assert time.monotonic() < deadline, "the consumer DAG did not run after the asset event"
        time.sleep(1)  # polling interval of a bounded wait
    indexed = stack.xcom("research_report_consumer", runs[0]["dag_run_id"], "index_reports")
    assert any(entry["topic"] == TOPIC for entry in indexed)


def test_the_spec_built_dag_writes_the_same_report(stack, hand_written):
    spec_run = run(stack, "research_pipeline_from_spec", {"topic": TOPIC})
    ours = local(stack.xcom("research_pipeline", hand_written, "publish_report")["report"]).read_text()
    theirs = local(stack.xcom("research_pipeline_from_spec", spec_run, "publish_report")["report"]).read_text()
    assert theirs == ours


def test_the_mapped_pipeline_researches_each_topic(stack):
    topics = ["solar power adoption", "battery recycling"]
    run_id = run(stack, "research_pipeline_mapped", {"topics": topics})
    reports = [stack.xcom("research_pipeline_mapped", run_id, "research.publish_report", map_index=i)
               for i in range(len(topics))]
    assert sorted(r["topic"] for r in reports) == sorted(topics)
    for r in reports:
        assert local(r["report"]).exists() and local(r["chart"]).exists()
