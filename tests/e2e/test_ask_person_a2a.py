"""
A person answers an A2A agent's questions through Airflow's REST API, under a real scheduler and triggerer.

The agent is the a2a-sdk 1.3.0 test agent (``tests/interop/a2a_v1_agent.py``), reached in JSON-RPC 1.0
and in HTTP+JSON 1.0. In both bindings a person's answers go to the same remote task (``taskId`` and
``contextId``) round after round, the agent uses them, and the stage ends with the agent's final result;
a rejection and an unanswered question each fail the stage and leave the remote task CANCELED.
"""

from __future__ import annotations

import json
import time

import pytest
from test_ask_person import hitl_path, wait_for_state, wait_until_parked

from agentvault_stack.testing import AirflowStack
from airflow_agentvault.compat import AIRFLOW_V_3_3_PLUS
from airflow_agentvault.operators.ask_person import REJECT
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects import codec_for
from airflow_agentvault.protocol.models import TaskState

from interop import servers
from interop.a2a_v1_agent import OPTIONS, question
from interop.matrix_scenarios import Server

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="awaiting_input came with Airflow 3.3")]

ANSWERED_DAG, REFUSED_DAG = "agentvault_asking_a2a", "agentvault_asking_a2a_refused"
RPC_CONN, REST_CONN = "a2a_jsonrpc", "a2a_rest"
ROWS = {RPC_CONN: "a2a-1.3.0-jsonrpc-1.0", REST_CONN: "a2a-1.3.0-rest"}
WAIT = 180.0  # bound of every wait on the stack
DAG = f'''
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.stage import agent_stage

fast = {{"poll_interval": 0.2}}
with DAG("{ANSWERED_DAG}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params=timing_params("fast")):
    agent_stage("jsonrpc", agentvault_conn_id="{RPC_CONN}", text="plan the trip ask=2 sleep=0.2", ask_person=True,
                max_rounds=2, deferrable=True, timing_overrides=fast)
    agent_stage("rest", agentvault_conn_id="{REST_CONN}", text="plan the trip ask=2 sleep=0.2", ask_person=True,
                max_rounds=2, deferrable=False, timing_overrides=fast)
with DAG("{REFUSED_DAG}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params=timing_params("fast")):
    agent_stage("rejected", agentvault_conn_id="{REST_CONN}", text="plan the trip ask=1 sleep=0.2", ask_person=True,
                max_rounds=1, deferrable=False, timing_overrides=fast)
    agent_stage("unanswered", agentvault_conn_id="{RPC_CONN}", text="plan the trip ask=1 sleep=0.2",
                ask_person=True, max_rounds=1, deferrable=True, response_timeout=timedelta(seconds=1),
                timing_overrides=fast)
'''


@pytest.fixture(scope="module")
def a2a_servers():
    """The a2a-sdk 1.3.0 agent, one process, as seen through each of our two connections."""
    try:
        proc, base_url = servers.start(servers.PROCESSES["a2a-sdk-1.3.0"])
    except servers.ServerStartFailure as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield {conn_id: servers.ROWS_BY_KEY[row].server(base_url) for conn_id, row in ROWS.items()}
    finally:
        servers.stop(proc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, a2a_servers):
    home = tmp_path_factory.mktemp("asking-a2a-stack")
    dags = tmp_path_factory.mktemp("asking-a2a-dags")
    (dags / "asking_a2a.py").write_text(DAG)
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
        {"conn_type": "agentvault", "host": server.rpc_url, "extra": {"dialect": server.dialect}})
        for conn_id, server in a2a_servers.items()}
    with AirflowStack(home=home, dags_folder=dags, extra_env=env) as running:
        running.wait_for_dag(ANSWERED_DAG, timeout=90)
        running.wait_for_dag(REFUSED_DAG, timeout=90)
        yield running


def client_for(server: Server) -> AgentClient:
    return AgentClient(server.rpc_url, codec=codec_for(server.dialect), connect_timeout=2, read_timeout=10)


def answer(stack: AirflowStack, run_id: str, task_id: str, option: str, dag_id: str) -> dict:
    """Wait until the question is parked, then choose ``option`` through the REST API; returns the HITL detail."""
    wait_until_parked(stack, run_id, task_id, timeout=WAIT, dag_id=dag_id)
    path = hitl_path(run_id, task_id, dag_id)
    detail = stack.api("GET", path)
    stack.api("PATCH", path, json_body={"chosen_options": [option], "params_input": {}})
    return detail


def wait_for_remote_state(client: AgentClient, task_id: str, wanted: TaskState, timeout: float = 30.0):
    """The remote task as ``get`` returns it once it is in ``wanted`` (cancel may land a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(task_id)
        if task.state is wanted or time.monotonic() > deadline:
            return task
        time.sleep(0.2)


def test_answers_reach_the_same_a2a_task_in_both_bindings(stack, a2a_servers):
    run_id = stack.trigger(ANSWERED_DAG)
    for stage in ("jsonrpc", "rest"):
        for number, option in ((1, "yes"), (2, "no")):
            detail = answer(stack, run_id, f"{stage}.ask_person_{number}", option, ANSWERED_DAG)
            assert detail["options"] == [*OPTIONS, REJECT], (stage, detail)
            assert question(number, 2) in detail["body"], (stage, detail)

    assert stack.wait_for_run(ANSWERED_DAG, run_id, timeout=WAIT) == "success", stack.diagnostics()
    for stage, conn_id in (("jsonrpc", RPC_CONN), ("rest", REST_CONN)):
        result = stack.xcom(ANSWERED_DAG, run_id, f"{stage}.ask_person_2")
        assert result["state"] == "COMPLETED" and "question" not in result, (stage, result)
        assert "answers: yes; no" in result["text"], (stage, result)
        rounds = result["metadata"]["questions"]
        assert [(r["round"], r["question"], r["answer"]) for r in rounds] == [
            (1, question(1, 2), "yes"), (2, question(2, 2), "no")], (stage, rounds)

        task = client_for(a2a_servers[conn_id]).get(result["task_id"])
        assert task.state is TaskState.COMPLETED, (stage, task)
        said = [m.text for m in task.messages if m.role == "user"]
        assert [t for t in said if t in OPTIONS] == ["yes", "no"], (stage, said)


def test_a_rejection_and_an_unanswered_question_cancel_the_a2a_task(stack, a2a_servers):
    run_id = stack.trigger(REFUSED_DAG)
    answer(stack, run_id, "rejected.ask_person_1", REJECT, REFUSED_DAG)
    wait_for_state(stack, run_id, "unanswered.ask_person_1", "failed", timeout=WAIT, dag_id=REFUSED_DAG)

    assert stack.wait_for_run(REFUSED_DAG, run_id, timeout=WAIT) == "failed"
    states = stack.task_states(REFUSED_DAG, run_id)
    assert states["rejected.ask_person_1"] == "failed" and states["unanswered.ask_person_1"] == "failed", states
    for stage, conn_id, why in (("rejected", REST_CONN, "a person rejected it"),
                                ("unanswered", RPC_CONN, "nobody answered it in time")):
        asked = stack.xcom(REFUSED_DAG, run_id, f"{stage}.stream")
        assert asked["question"], (stage, asked)
        task = wait_for_remote_state(client_for(a2a_servers[conn_id]), asked["task_id"], TaskState.CANCELED)
        assert task.state is TaskState.CANCELED, (stage, task)
        assert f"went unanswered ({why})" in stack.task_log(REFUSED_DAG, run_id, f"{stage}.ask_person_1")
