"""
The example stage, deferred, under a real scheduler + triggerer + dag-processor + API server on SQLite.

``dag.test()`` runs triggers inline, so only this proves deferral works: the sensor and the stream
operator must go through DEFERRED, their events must reach the task log from the triggerer, the
result must equal the synchronous run's, and killing a deferred stream must cancel the remote task.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2e.killing import mark_failed_until_canceled, wait_for_log

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from agentvault_stack.testing import PROVIDER_MODULES, AirflowStack
from airflow_agentvault.compat import AIRFLOW_V_3_3_PLUS, ExceptionRetryPolicy
from airflow_agentvault.protocol.client import AgentClient

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[2] / "dags"
DEFERRED, SYNC = "agentvault_single_stage_deferred", "agentvault_single_stage"
TASKFLOW = "agentvault_taskflow"


@pytest.fixture(scope="module")
def agent():
    with ReferenceAgentServer(AgentBehaviour(work_seconds=1.0)) as server:
        yield server


RETRY_PROBE = "agentvault_retry_probe"
RETRY_PROBE_DAG = f'''
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_agentvault.compat import AIRFLOW_V_3_3_PLUS, ExceptionRetryPolicy
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator

# Without retry policies (Airflow before 3.3) both tasks use the standard retries.
none = {{"retry_policy": ExceptionRetryPolicy(rules=[])}} if ExceptionRetryPolicy is not None else {{}}
with DAG("{RETRY_PROBE}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         default_args={{"retries": 2, "retry_delay": timedelta(0)}}):
    AgentVaultInitiateOperator(task_id="default_policy", text="hi")
    AgentVaultInitiateOperator(task_id="no_policy", text="hi", **none)
'''


PRELOAD = pytest.param(PROVIDER_MODULES, marks=pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS, reason="the forkserver preload of workers came with Airflow 3.3"))


@pytest.fixture(scope="module", params=[(), PRELOAD], ids=["plain-workers", "preloaded-workers"])
def stack(request, tmp_path_factory, agent):
    """Once with Airflow's default workers, once with the forkserver preload the demo and README use
    (it changes how the scheduler and the triggerer start their processes)."""
    home = tmp_path_factory.mktemp("deferred-stack")
    dags = tmp_path_factory.mktemp("deferred-dags")
    for example in ("agentvault_single_stage.py", "agentvault_taskflow.py"):
        (dags / example).write_text((DAGS / example).read_text())
    (dags / "retry_probe.py").write_text(RETRY_PROBE_DAG)
    conn = json.dumps({"conn_type": "agentvault", "host": agent.rpc_url})
    with AirflowStack(home=home, dags_folder=dags, extra_env={"AIRFLOW_CONN_AGENTVAULT_DEFAULT": conn},
                      preload_modules=request.param) as running:
        for dag_id in (DEFERRED, SYNC, RETRY_PROBE, TASKFLOW):
            running.wait_for_dag(dag_id, timeout=90)
        yield running


def run(stack: AirflowStack, dag_id: str, conf: dict | None = None, timeout: float = 180) -> str:
    run_id = stack.trigger(dag_id, {"topic": "tidal energy", **(conf or {})})
    state = stack.wait_for_run(dag_id, run_id, timeout=timeout)
    assert state == "success", (
        f"{dag_id} ended {state}: {stack.task_states(dag_id, run_id)}\n"
        f"{stack.task_log(dag_id, run_id, 'stream')}\n{stack.diagnostics()}"
    )
    return run_id


def normalised(result: dict) -> dict:
    """The result without what differs between two runs (task ids, timings)."""
    text = json.dumps({k: v for k, v in result.items() if k != "metadata"})
    return json.loads(re.sub(r"ref-[0-9a-f]{8}", "ref-<id>", text))


#: Paths a deferred stream may take whatever the scheduling: a task that finished before the stream task
#: ran is taken as it is ("already-finished"), so only the paths the fault rules out are excluded.
STREAMED = {"stream", "resubscribe", "already-finished"}
#: Every subscription is cut after 3 events, unless the task ends within them: any path is possible.
CUT = {"stream", "resubscribe", "polling", "already-finished"}
POLLED = {"polling", "already-finished"}


@pytest.mark.parametrize(
    "behaviour, conf, paths",
    [
        (AgentBehaviour(work_seconds=6), {}, STREAMED),
        (AgentBehaviour(work_seconds=15, visible_after_seconds=8), {"verify_max_interval": 1}, STREAMED),
        (AgentBehaviour(work_seconds=8, tokens=10, drop_stream_after_events=3), {}, CUT),
        (AgentBehaviour(work_seconds=6, subscribe_not_found=True), {"sse_retry_delay": 0.1}, POLLED),
    ],
    ids=["visible-at-once", "visible-after-8s", "sse-cut-after-3-events", "subscribe-never-found"],
)
def test_deferred_stage_completes_in_each_mode(stack, agent, behaviour, conf, paths):
    agent.set_behaviour(behaviour)
    run_id = run(stack, DEFERRED, conf)
    result = stack.xcom(DEFERRED, run_id, "stream")
    final = AgentClient(agent.rpc_url).get(result["task_id"])  # the agent's own final task
    assert result["state"] == final.state.value == "COMPLETED"
    assert result["artifacts"] == [artifact.to_wire() for artifact in final.artifacts]
    assert "tidal energy" in result["artifacts"][0]["content"]["answer"]
    path = result["metadata"]["delivered_by"]
    assert path in paths, path

    log = stack.task_log(DEFERRED, run_id, "stream")
    if path == "already-finished":  # the scheduler was slower than the agent: nothing left to wait for
        assert "taking its result without streaming" in log
        return
    assert f"result delivered by {path}" in log
    assert stack.deferral_evidence(DEFERRED, run_id, "stream")["deferred"]
    if behaviour.subscribe_not_found:  # no event ever streams: the log tells the polling story
        assert "Subscription failed 3 times" in log and re.search(r"Poll \d+: task ref-\w+ is COMPLETED", log)
    elif path != "polling":  # streamed events reach the task log live from the triggerer
        assert re.search(r"\[ref-[0-9a-f]{8}\] (state -> |artifact |assistant says)", log), log[-3000:]


def test_deferred_and_synchronous_runs_give_the_same_result(stack, agent):
    agent.set_behaviour(AgentBehaviour(work_seconds=1.0))
    deferred = stack.xcom(DEFERRED, run(stack, DEFERRED), "stream")
    sync = stack.xcom(SYNC, run(stack, SYNC), "stream")
    assert normalised(deferred) == normalised(sync)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="triggers learned on_kill in Airflow 3.3; before, marking a "
                    "deferred task failed leaves the remote task running (compat.py)")
def test_marking_a_deferred_stream_failed_cancels_the_remote_task(stack, agent):
    agent.set_behaviour(AgentBehaviour(work_seconds=300))
    run_id = stack.trigger(DEFERRED, {"topic": "slow topic"})
    wait_for_log(stack, DEFERRED, run_id, "stream", "Subscribing to task")
    assert stack.task_states(DEFERRED, run_id)["stream"] == "deferred"
    agent_task = stack.xcom(DEFERRED, run_id, "initiate")
    state = mark_failed_until_canceled(stack, agent.rpc_url, DEFERRED, run_id, "stream", agent_task)
    assert state == "CANCELED"


def test_refused_credentials_fail_without_using_the_retries(stack, agent):
    """The operators' retry policy, applied by the real task runner: a 401 is final, where the same
    task without the policy spends its 2 retries on the same answer."""
    agent.set_behaviour(AgentBehaviour(api_key="a-key-the-connection-lacks"))
    try:
        run_id = stack.trigger(RETRY_PROBE)
        assert stack.wait_for_run(RETRY_PROBE, run_id, timeout=120) == "failed"
    finally:
        agent.set_behaviour(AgentBehaviour(work_seconds=1.0))
    tries = {task: len(stack.task_tries(RETRY_PROBE, run_id, task)) for task in ("default_policy", "no_policy")}
    # Airflow before 3.3 has no retry policies: the documented fallback is the standard retries
    assert tries == {"default_policy": 1 if ExceptionRetryPolicy is not None else 3, "no_policy": 3}
    assert "NotAuthorizedError" in stack.task_log(RETRY_PROBE, run_id, "default_policy")


def test_the_taskflow_decorator_runs_a_stage_sync_and_deferred(stack, agent):
    agent.set_behaviour(AgentBehaviour(work_seconds=6))
    run_id = stack.trigger(TASKFLOW, {"topic": "tidal energy"})
    assert stack.wait_for_run(TASKFLOW, run_id, timeout=180) == "success", stack.task_states(TASKFLOW, run_id)
    client = AgentClient(agent.rpc_url)
    for task_id in ("ask", "ask_deferred", "ask_split_stream"):
        result = stack.xcom(TASKFLOW, run_id, task_id)
        final = client.get(result["task_id"])
        assert result["state"] == final.state.value == "COMPLETED"
        assert result["artifacts"] == [artifact.to_wire() for artifact in final.artifacts]
    for task_id in ("ask", "ask_deferred"):  # the "Agent card" extra link, as the UI reads it
        assert stack.xcom(TASKFLOW, run_id, task_id, key="_link_AgentCardLink") == f"{agent.url}/agent-card.json"
    deferred = stack.xcom(TASKFLOW, run_id, "ask_deferred")
    if deferred["metadata"]["delivered_by"] != "already-finished":
        assert stack.deferral_evidence(TASKFLOW, run_id, "ask_deferred")["deferred"]
