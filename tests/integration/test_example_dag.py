"""The example single-stage DAG run with dag.test() against the reference agent, in each of its modes."""

from __future__ import annotations

import json

import pytest

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer

from dagtest import load_example_dag, stream_xcom

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def example_dag(airflow_db):
    return load_example_dag("agentvault_single_stage")


def run_against(monkeypatch, dag, behaviour: AgentBehaviour, **conf):
    with ReferenceAgentServer(behaviour) as agent:
        monkeypatch.setenv(
            "AIRFLOW_CONN_AGENTVAULT_DEFAULT", json.dumps({"conn_type": "agentvault", "host": agent.rpc_url})
        )
        run = dag.test(run_conf={"topic": "tidal energy", **conf})
        assert run.state == "success"
        result = stream_xcom(run)
        remote = agent.agent
        return result, remote


#: The paths each fault leaves open under any scheduling (a task that ended first is "already-finished").
STREAMED = {"stream", "resubscribe", "already-finished"}
#: Every subscription is cut after 3 events, unless the task ends within them: any path is possible.
CUT = {"stream", "resubscribe", "polling", "already-finished"}
POLLED = {"polling", "already-finished"}


@pytest.mark.parametrize(
    "behaviour, conf, paths",
    [
        (AgentBehaviour(work_seconds=0.5), {}, STREAMED),
        (AgentBehaviour(work_seconds=12, visible_after_seconds=8), {"verify_max_interval": 1}, STREAMED),
        (AgentBehaviour(work_seconds=1.5, tokens=10, drop_stream_after_events=3), {}, CUT),
        (AgentBehaviour(work_seconds=1.0, subscribe_not_found=True), {"sse_retry_delay": 0.1}, POLLED),
    ],
    ids=["default", "visible-after-8s", "sse-cut-after-3-events", "subscribe-never-found"],
)
def test_example_dag_completes_in_each_mode(monkeypatch, example_dag, behaviour, conf, paths):
    result, _ = run_against(monkeypatch, example_dag, behaviour, **conf)
    assert result["state"] == "COMPLETED"
    assert result["metadata"]["delivered_by"] in paths
    assert result["text"]
    answer = result["artifacts"][0]["content"]
    assert "tidal energy" in answer["answer"] and answer["echo"]["data"] == [{"topic": "tidal energy"}]
