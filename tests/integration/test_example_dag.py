"""The example single-stage DAG run with dag.test() against the reference agent, in each of its modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_agentvault.agent import AgentBehaviour, ReferenceAgentServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def airflow_db():
    """Create the SQLite metadata database of this session's AIRFLOW_HOME (bounded)."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True, env=os.environ.copy(), capture_output=True, timeout=180,
    )


@pytest.fixture(scope="module")
def example_dag(airflow_db):
    sys.path.insert(0, str(REPO / "dags"))
    try:
        from agentvault_single_stage import single_stage

        yield single_stage("agentvault_single_stage", deferrable=False)
    finally:
        sys.path.remove(str(REPO / "dags"))


def stream_result(run) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
                XComModel.task_id == "stream", XComModel.key == "return_value",
            )
        ).one()
        return XComModel.deserialize_value(row)


def run_against(monkeypatch, dag, behaviour: AgentBehaviour, **conf):
    with ReferenceAgentServer(behaviour) as agent:
        monkeypatch.setenv(
            "AIRFLOW_CONN_AGENTVAULT_DEFAULT", json.dumps({"conn_type": "agentvault", "host": agent.rpc_url})
        )
        run = dag.test(run_conf={"topic": "tidal energy", **conf})
        assert run.state == "success"
        result = stream_result(run)
        remote = agent.agent
        return result, remote


@pytest.mark.parametrize(
    "behaviour, conf, path",
    [
        (AgentBehaviour(work_seconds=0.5), {}, "stream"),
        (AgentBehaviour(work_seconds=12, visible_after_seconds=8), {"verify_max_interval": 1}, "stream"),
        (AgentBehaviour(work_seconds=1.5, tokens=10, drop_stream_after_events=3), {}, "polling"),
        (AgentBehaviour(work_seconds=1.0, subscribe_not_found=True), {"sse_retry_delay": 0.1}, "polling"),
    ],
    ids=["default", "visible-after-8s", "sse-cut-after-3-events", "subscribe-never-found"],
)
def test_example_dag_completes_in_each_mode(monkeypatch, example_dag, behaviour, conf, path):
    result, _ = run_against(monkeypatch, example_dag, behaviour, **conf)
    assert result["state"] == "COMPLETED"
    assert result["metadata"]["delivered_by"] == path
    assert result["text"]
    answer = result["artifacts"][0]["content"]
    assert "tidal energy" in answer["answer"] and answer["echo"]["data"] == [{"topic": "tidal energy"}]
