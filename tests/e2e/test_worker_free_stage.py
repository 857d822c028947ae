"""
Worker-free stages under a real scheduler + triggerer + dag-processor + API server on SQLite.

``dag.test()`` runs no scheduler and no triggerer, so only this proves that a ``worker_free`` stage is
started by the scheduler in the triggerer and ended there: the executor never got the task (its row was
never queued, by no job), no task process wrote a log for the try (only the triggerer's file exists),
and the result is the agent's own. Failures resume on a worker (the typed error, the retry policy), a
retry replaces a FAILED remote task, marking the task failed cancels the remote task, an upstream's
output reaches the agent through the trigger, and a mapped stage falls back to the worker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e.killing import mark_failed_until_canceled, wait_for_log
from e2e.test_ask_person import QUESTION, hitl_path, wait_until_parked

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from agentvault_stack.testing import AirflowStack
from airflow_agentvault.compat import WORKER_FREE_STAGES
from airflow_agentvault.operators.ask_person import SEND
from airflow_agentvault.protocol.client import AgentClient

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not WORKER_FREE_STAGES, reason="tasks start in the triggerer from Airflow 3.3")]

CHAIN, SLOW, RETRY, ASKING = "wf_chain", "wf_slow", "wf_retry", "wf_asking"
DAGS = f'''
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.pipelines.stage import agent_stage

TIMING = {{"verify_interval": 0.5, "poll_interval": 1, "overall_timeout": 600}}
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("{CHAIN}", schedule=None, start_date=START, params={{"topic": "tides"}}):
    first = AgentVaultStageOperator(task_id="first", text="Research {{{{ params.topic }}}}", timing=TIMING,
                                    worker_free=True)
    second = AgentVaultStageOperator(task_id="second", text="Summarise", data={{"previous": first.output}},
                                     timing=TIMING, worker_free=True)
    AgentVaultStageOperator.partial(task_id="mapped", timing=TIMING, worker_free=True).expand(text=["a", "b"])

with DAG("{SLOW}", schedule=None, start_date=START):
    AgentVaultStageOperator(task_id="slow", text="Take your time", timing=TIMING, worker_free=True)

with DAG("{RETRY}", schedule=None, start_date=START,
         default_args={{"retries": 1, "retry_delay": timedelta(0)}}):
    AgentVaultStageOperator(task_id="flaky", text="Try", timing=TIMING, worker_free=True)

with DAG("{ASKING}", schedule=None, start_date=START):
    agent_stage("asking", text="tidal energy", compact=True, deferrable=True, ask_person=True, max_rounds=1,
                timing=TIMING, message_metadata={{"reference_agent": {{"input_required": True,
                                                                      "input_question": "{QUESTION}"}}}})
'''


@pytest.fixture(scope="module")
def agent():
    with ReferenceAgentServer(AgentBehaviour(work_seconds=3.0)) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory, agent):
    home = tmp_path_factory.mktemp("worker-free-stack")
    dags = tmp_path_factory.mktemp("worker-free-dags")
    (dags / "worker_free.py").write_text(DAGS)
    conn = json.dumps({"conn_type": "agentvault", "host": agent.rpc_url})
    with AirflowStack(home=home, dags_folder=dags, extra_env={"AIRFLOW_CONN_AGENTVAULT_DEFAULT": conn}) as running:
        for dag_id in (CHAIN, SLOW, RETRY, ASKING):
            running.wait_for_dag(dag_id, timeout=90)
        yield running


def never_on_a_worker(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> None:
    """The executor never got the task, and no task process logged for it: only the triggerer did."""
    [row] = stack.task_instance_rows(dag_id, run_id, task_id)
    assert row["queued_dttm"] is None and row["queued_by_job_id"] is None, row
    assert row["pid"] is None, row
    names = [p.name for p in stack.task_log_files(dag_id, run_id, task_id)]
    assert names and all(".trigger." in name for name in names), names
    assert "Worker-free: this stage started in the triggerer" in stack.task_log(dag_id, run_id, task_id)


def test_a_worker_free_chain_ends_in_the_triggerer_with_the_agents_result(stack, agent):
    agent.set_behaviour(AgentBehaviour(work_seconds=3.0))
    run_id = stack.trigger(CHAIN, {"topic": "tidal energy"})
    state = stack.wait_for_run(CHAIN, run_id, timeout=240)
    assert state == "success", f"{stack.task_states(CHAIN, run_id)}\n{stack.diagnostics()}"
    client = AgentClient(agent.rpc_url)
    first = stack.xcom(CHAIN, run_id, "first")
    for task_id in ("first", "second"):
        result = stack.xcom(CHAIN, run_id, task_id)
        final = client.get(result["task_id"])  # the agent's own final task
        assert result["state"] == final.state.value == "COMPLETED"
        assert result["artifacts"] == [artifact.to_wire() for artifact in final.artifacts]
        never_on_a_worker(stack, CHAIN, run_id, task_id)
        assert stack.xcom(CHAIN, run_id, task_id, key="agentvault_task_id") == result["task_id"]
    # the upstream's output reached the agent: the trigger read it from first's XCom
    sent = client.get(stack.xcom(CHAIN, run_id, "second")["task_id"]).messages[0]
    data = [part.content for part in sent.parts if getattr(part, "type", None) == "data"]
    assert data == [{"previous": first}], data
    assert "tidal energy" in json.dumps(first)  # rendered in the triggerer
    # a mapped stage cannot start in the triggerer: it ran on a worker, and deferred as before
    for index in (0, 1):
        assert stack.xcom(CHAIN, run_id, "mapped", map_index=index)["state"] == "COMPLETED"
        names = [p.name for p in stack.task_log_files(CHAIN, run_id, "mapped", map_index=index)]
        assert any(".trigger." not in name for name in names), names


def test_a_failed_remote_task_fails_on_a_worker_and_the_retry_replaces_it(stack, agent):
    agent.set_behaviour(AgentBehaviour(work_seconds=1.0, fail=True))
    try:
        run_id = stack.trigger(RETRY)
        assert stack.wait_for_run(RETRY, run_id, timeout=240) == "failed", stack.task_states(RETRY, run_id)
    finally:
        agent.set_behaviour(AgentBehaviour(work_seconds=3.0))
    assert len(stack.task_tries(RETRY, run_id, "flaky")) == 2  # the retry policy let the FAILED task retry
    first, second = (stack.task_log(RETRY, run_id, "flaky", try_number=n) for n in (1, 2))
    for log in (first, second):  # each try started in the triggerer and resumed on a worker for its error
        assert "Worker-free: this stage started in the triggerer" in log
        assert "AgentTaskFailedError" in log or "FAILED" in log
    started = [line.split("Started task ")[1].split()[0] for line in (first + second).splitlines()
               if "Started task " in line]
    assert len(started) == 2 and started[0] != started[1], started
    assert f"Task {started[0]} of an earlier try ended FAILED; starting a new one" in second


def test_marking_a_worker_free_stage_failed_cancels_the_remote_task(stack, agent):
    agent.set_behaviour(AgentBehaviour(work_seconds=300))
    try:
        run_id = stack.trigger(SLOW)
        wait_for_log(stack, SLOW, run_id, "slow", "Subscribing to task")
        assert stack.task_states(SLOW, run_id)["slow"] == "deferred"
        agent_task = stack.xcom(SLOW, run_id, "slow", key="agentvault_task_id")
        state = mark_failed_until_canceled(stack, agent.rpc_url, SLOW, run_id, "slow", agent_task)
    finally:
        agent.set_behaviour(AgentBehaviour(work_seconds=3.0))
    assert state == "CANCELED"
    assert not Path(stack.logs_dir, f"dag_id={SLOW}", f"run_id={run_id}", "task_id=slow", "attempt=1.log").exists()


def test_a_worker_free_stage_hands_the_agents_question_to_a_person(stack, agent):
    """The trigger delivers a question as the follow step does (a result with ``question``); a person answers."""
    dag_id = ASKING
    run_id = stack.trigger(dag_id)
    wait_until_parked(stack, run_id, "asking.ask_person_1", dag_id=dag_id)
    asked = stack.xcom(dag_id, run_id, "asking.run")
    assert asked["question"]["text"] == QUESTION
    never_on_a_worker(stack, dag_id, run_id, "asking.run")
    stack.api("PATCH", hitl_path(run_id, "asking.ask_person_1", dag_id),
              json_body={"chosen_options": [SEND], "params_input": {"answer": "the 2010s"}})
    assert stack.wait_for_run(dag_id, run_id, timeout=180) == "success", stack.task_states(dag_id, run_id)
    result = stack.xcom(dag_id, run_id, "asking.ask_person_1")
    assert result["state"] == "COMPLETED" and result["task_id"] == asked["task_id"]
    answered = AgentClient(agent.rpc_url).get(result["task_id"])
    assert any(m.role == "user" and m.text == "the 2010s" for m in answered.messages)
