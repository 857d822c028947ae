"""``@task.agentvault`` against the reference agent, in-process (dag.test) and its input checks."""

from __future__ import annotations

import importlib.util
import json

import pytest

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from airflow_agentvault.compat import AirflowFailException
from airflow_agentvault.decorators.agentvault import message_parts
from airflow_agentvault.protocol.client import AgentClient

from dagtest import REPO, stream_xcom

pytestmark = pytest.mark.integration


def load_taskflow_dag():
    spec = importlib.util.spec_from_file_location("agentvault_taskflow", REPO / "dags" / "agentvault_taskflow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.agentvault_taskflow()


def test_the_decorated_task_returns_the_agents_final_result(monkeypatch, airflow_db):
    dag = load_taskflow_dag()
    with ReferenceAgentServer(AgentBehaviour(work_seconds=0.5)) as agent:
        monkeypatch.setenv("AIRFLOW_CONN_AGENTVAULT_DEFAULT",
                           json.dumps({"conn_type": "agentvault", "host": agent.rpc_url}))
        run = dag.test(run_conf={"topic": "tidal energy"})
        assert run.state == "success"
        client = AgentClient(agent.rpc_url)
        for task_id in ("ask", "ask_deferred", "ask_split_stream"):
            result = stream_xcom(run, task_id)
            final = client.get(result["task_id"])
            assert result["state"] == final.state.value == "COMPLETED"
            assert result["artifacts"] == [a.to_wire() for a in final.artifacts]
            assert "tidal energy" in result["artifacts"][0]["content"]["answer"]
        assert stream_xcom(run, "compare")["states"] == ["COMPLETED", "COMPLETED", "COMPLETED"]
        sent = stream_xcom(run, "ask_split")  # the split form's send step returns the agent's task id
        assert sent == stream_xcom(run, "ask_split_stream")["task_id"]


@pytest.mark.parametrize("returned, expected", [
    ("hello", ("hello", None)),
    ({"topic": "x"}, (None, {"topic": "x"})),
    ({"text": "hi", "data": {"topic": "x"}}, ("hi", {"topic": "x"})),
])
def test_what_the_function_returns_is_the_message(returned, expected):
    assert message_parts(returned) == expected


@pytest.mark.parametrize("returned", [None, 42, ["a"]])
def test_anything_else_fails_the_task_with_a_clear_message(returned):
    with pytest.raises(AirflowFailException, match="must return the message"):
        message_parts(returned)


def test_the_agent_card_link_points_at_the_agents_card(monkeypatch):
    from airflow_agentvault.links import AgentCardLink
    from airflow_agentvault.operators.agentvault import AgentVaultStreamOperator

    monkeypatch.setenv("AIRFLOW_CONN_LINKED", json.dumps({"conn_type": "agentvault", "host": "http://agent.test:8765/a2a/",
                                                        "password": "secret-key"}))
    operator = AgentVaultStreamOperator(task_id="s", agent_task_id="t-1", agentvault_conn_id="linked")
    assert AgentCardLink().get_link(operator, ti_key=None) == "http://agent.test:8765/agent-card.json"
    assert any(isinstance(link, AgentCardLink) for link in operator.operator_extra_links)
