"""Every example DAG parses without import errors and documents itself."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dags_with_docs(dagbag):
    expected = {
        "agentvault_single_stage", "agentvault_ask_person", "research_pipeline", "research_pipeline_compact",
        "research_pipeline_from_spec", "research_pipeline_mapped", "research_report_consumer",
    }
    assert expected <= set(dagbag.dag_ids)
    for dag_id in expected:
        assert dagbag.dags[dag_id].doc_md, f"{dag_id} has no doc_md"


def test_split_and_compact_forms(dagbag):
    split = dagbag.dags["research_pipeline"]
    compact = dagbag.dags["research_pipeline_compact"]
    # + the topic stage's one round of a person answering its question, + publish
    assert len(split.tasks) == 7 * 3 + 1 + 1
    assert len(compact.tasks) == 7 + 1 + 1
    assert {t.task_id for t in split.tasks if t.task_id.endswith(".stream")} == {
        f"{s}.stream" for s in ("topic_research", "crawl", "extract", "verify", "synthesize", "edit", "visualize")
    }
    # the chain is wired by data: each stage's initiate follows the previous stage's result
    assert "topic_research.ask_person_1" in split.get_task("crawl.initiate").upstream_task_ids
    assert "extract.stream" in split.get_task("verify.initiate").upstream_task_ids
    assert "topic_research.run" in compact.get_task("topic_research.ask_person_1").upstream_task_ids


def test_spec_dag_matches_the_hand_written_one(dagbag):
    spec = dagbag.dags["research_pipeline_from_spec"]
    hand = dagbag.dags["research_pipeline"]
    assert {t.task_id for t in spec.tasks} == {t.task_id for t in hand.tasks}
    for task in hand.tasks:
        assert spec.get_task(task.task_id).upstream_task_ids == task.upstream_task_ids
        if hasattr(task, "text"):
            assert spec.get_task(task.task_id).text == task.text
            assert spec.get_task(task.task_id).agentvault_conn_id == task.agentvault_conn_id
    assert set(spec.params.keys()) == set(hand.params.keys())


def test_consumer_is_scheduled_on_the_report_asset(dagbag):
    from airflow_agentvault.pipelines.report import REPORT_ASSET

    consumer = dagbag.dags["research_report_consumer"]
    names = [asset.name for asset in consumer.timetable.asset_condition.objects]
    assert names == [REPORT_ASSET.name]
    producer = dagbag.dags["research_pipeline"].get_task("publish_report")
    assert [o.name for o in producer.outlets] == [REPORT_ASSET.name]


def test_a_task_process_builds_only_its_own_dag(monkeypatch):
    """Airflow sets the parsing context when a task's process parses the file: one DAG, not both."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "research_pipeline_compact")
    bag = DagBag(dag_folder=str(DAGS / "research_pipeline.py"))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"research_pipeline_compact"}
