"""
Waiting by push notification under a real scheduler + triggerer + dag-processor + API server on SQLite.

``tests/interop/test_push_waits.py`` runs the trigger directly; only this proves that a stage with
``push="on"`` registers with the receiver of the real triggerer process and is woken there by the agent
(a2a-sdk 1.3.0, which sends its notifications with the SDK's own sender). The connection's safety poll
is far longer than any wait here, so a stage that ends within its bound was woken by the agent's call:
the agent's log shows the notification it sent (answered 2xx by the receiver), and the triggerer's task
log shows the registration and the result delivered by push, equal to the agent's own final task.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from e2e.test_worker_free_stage import never_on_a_worker

from agentvault_stack.testing import AirflowStack
from airflow_agentvault.compat import WORKER_FREE_STAGES
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects import codec_for

from interop import servers

pytestmark = pytest.mark.integration

DEFERRED, WORKER_FREE = "push_deferred", "push_worker_free"
DIALECT = "a2a-1.0"
#: Seconds between safety reads: longer than every bound below, so only a notification can end a wait in time.
SAFETY_POLL = 900
#: The agent works this long: the stage is registered and parked on its doorbell well before it ends.
TEXT = "tidal energy delay=0 sleep=20"
DAGS = f'''
import pendulum
from airflow.sdk import DAG

from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.pipelines.stage import agent_stage

TIMING = {{"verify_interval": 0.5, "poll_interval": 1, "overall_timeout": 600}}
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("{DEFERRED}", schedule=None, start_date=START):
    AgentVaultStageOperator(task_id="stage", text="{TEXT}", timing=TIMING, deferrable=True, worker_free=False,
                            push="on")

with DAG("{WORKER_FREE}", schedule=None, start_date=START):
    agent_stage("stage", text="{TEXT}", compact=True, deferrable=True, timing=TIMING, push="on")
'''


@pytest.fixture(scope="module")
def agent():
    """The a2a-sdk 1.3.0 agent, logging at info so each notification it sends is in its log."""
    script = servers.PROCESSES["a2a-sdk-1.3.0"].script
    proc, base_url = servers.sdk_venv.start_server(
        [sys.executable, script.name, "--port", "{port}", "--log-level", "info"], cwd=script.parent,
        ready_url="/.well-known/agent-card.json", timeout=servers.SERVER_START_TIMEOUT, name="e2e-push-agent")
    try:
        yield proc, base_url
    finally:
        servers.stop(proc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, agent):
    _, base_url = agent
    home = tmp_path_factory.mktemp("push-stack")
    dags = tmp_path_factory.mktemp("push-dags")
    (dags / "push_stages.py").write_text(DAGS)
    # the connection streams; the stages' own push="on" wins
    conn = json.dumps({"conn_type": "agentvault", "host": f"{base_url}/",
                       "extra": {"dialect": DIALECT, "push": "off", "push_safety_poll": SAFETY_POLL}})
    with AirflowStack(home=home, dags_folder=dags, extra_env={"AIRFLOW_CONN_AGENTVAULT_DEFAULT": conn}) as running:
        for dag_id in (DEFERRED, WORKER_FREE):
            running.wait_for_dag(dag_id, timeout=90)
        yield running


@pytest.fixture(scope="module")
def runs(stack) -> dict[str, str]:
    """Both stages' runs, triggered together (they wait side by side on the one receiver of the triggerer)."""
    return {dag_id: stack.trigger(dag_id) for dag_id in (DEFERRED, WORKER_FREE)}


def agent_log_line(proc, text: str, bound: float = 10.0) -> str:
    """The agent's first log line containing ``text`` (polled, bounded: its log is written asynchronously)."""
    path = Path(proc.log_path)
    until = time.monotonic() + bound
    while True:
        found = [line for line in path.read_text(errors="replace").splitlines() if text in line]
        if found:
            return found[0]
        assert time.monotonic() < until, f"the agent never logged {text!r}:\n{path.read_text()[-3000:]}"
        time.sleep(0.1)


def woken_by_push(stack: AirflowStack, agent, dag_id: str, run_id: str) -> None:
    """The run's stage ended with the agent's own result, woken in the triggerer by the agent's call."""
    proc, base_url = agent
    state = stack.wait_for_run(dag_id, run_id, timeout=SAFETY_POLL / 10)
    log = stack.task_log(dag_id, run_id, "stage")
    assert state == "success", f"{stack.task_states(dag_id, run_id)}\n{log[-4000:]}\n{stack.diagnostics()}"
    result = stack.xcom(dag_id, run_id, "stage")
    task_id = result["task_id"]
    final = AgentClient(f"{base_url}/", codec=codec_for(DIALECT)).get(task_id)  # the agent's own final task
    assert result["state"] == final.state.value == "COMPLETED"
    assert result["artifacts"] == [artifact.to_wire() for artifact in final.artifacts] and result["artifacts"]
    assert result["metadata"]["delivered_by"] == "push", result["metadata"]
    # the triggerer registered with its own receiver, parked, and was woken: no stream, no safety read in time
    triggerer = "\n".join(path.read_text(errors="replace") for path in stack.task_log_files(dag_id, run_id, "stage")
                          if ".trigger." in path.name)
    assert f"Waiting for task {task_id} by push notification to http://127.0.0.1:" in triggerer, log[-4000:]
    assert f"safety read every {SAFETY_POLL:g} s" in triggerer
    assert "result delivered by push" in triggerer
    assert "Subscribing to task" not in log
    # the agent called the receiver, which answered 2xx (the SDK logs a sent notification only then)
    sent = agent_log_line(proc, f"Push-notification sent for task_id={task_id} to URL: http://127.0.0.1:")
    assert "/a2a-push/" in sent


def test_a_deferred_stage_waits_by_push_in_the_triggerer(stack, agent, runs):
    woken_by_push(stack, agent, DEFERRED, runs[DEFERRED])


@pytest.mark.skipif(not WORKER_FREE_STAGES, reason="tasks start in the triggerer from Airflow 3.3")
def test_a_worker_free_stage_waits_by_push_in_the_triggerer(stack, agent, runs):
    woken_by_push(stack, agent, WORKER_FREE, runs[WORKER_FREE])
    never_on_a_worker(stack, WORKER_FREE, runs[WORKER_FREE], "stage")
