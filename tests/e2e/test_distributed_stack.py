"""
The provider on a distributed Airflow: CeleryExecutor on Postgres and Redis, two Celery workers, two
triggerers, each its own process tree on 127.0.0.1 (DistributedAirflowStack; no Docker).

The mapped research pipeline, followed on workers and in triggerers, must give the LocalExecutor
stack's results. Then the engine faults a deployment meets: a worker dies mid-stream (Airflow retries
the task; the retry reconnects to the remote task recorded in the task state store, so the agent runs
exactly one), the triggerer holding a deferred stream dies (the other triggerer resumes it from
tasks/get), the scheduler restarts, Postgres restarts. Each ends with the agent's exact result.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from e2e.test_deferred_stage import normalised
from e2e.test_research_pipeline import local, run

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from agentvault_stack.agent.research import start_research_agents
from agentvault_stack.testing import AirflowStack, AirflowStackError
from agentvault_stack.testing.deployment import agent_connections
from agentvault_stack.testing.distributed_stack import DistributedAirflowStack
from airflow_agentvault.pipelines.research import STAGE_IDS
from airflow_agentvault.protocol.client import AgentClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(900),
    pytest.mark.skipif(shutil.which("redis-server") is None or not Path("/usr/lib/postgresql").is_dir(),
                       reason="needs Debian's postgresql and redis-server (scripts/setup-tests.sh installs them as root)"),
]

DAGS = Path(__file__).resolve().parent / "dags"
TOPICS = ["solar power adoption", "battery recycling"]
SYNC, DEFERRED = "distributed_research", "distributed_research_deferred"
FAULT, FAULT_DEFERRED, FAULT_WORKER_FREE = "fault_stage", "fault_stage_deferred", "fault_stage_worker_free"


@pytest.fixture(scope="module")
def research_agents():
    with start_research_agents(base_port=0) as agents:
        yield agents


@pytest.fixture(scope="module")
def agent():
    with ReferenceAgentServer(AgentBehaviour(work_seconds=1.0)) as server:
        yield server


@pytest.fixture(scope="module")
def dags(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("distributed-dags")
    for name in ("distributed_research.py", "distributed_faults.py"):
        shutil.copy(DAGS / name, folder / name)
    return folder


def connections(research_agents, agent, reports: Path) -> dict[str, str]:
    """The agents' connections, built as docker-compose.yaml's are, and where reports go."""
    return {**agent_connections(research_agents.urls, agent.rpc_url), "AGENTVAULT_REPORTS_DIR": str(reports)}


def outcomes(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, dict]:
    """Per topic: every stage's result without what differs between runs, the report and the chart."""
    found = {}
    for index, topic in enumerate(TOPICS):
        published = stack.xcom(dag_id, run_id, "research.publish_report", map_index=index)
        found[topic] = {
            "stages": {stage: normalised(stack.xcom(dag_id, run_id, f"research.{stage}", map_index=index))
                       for stage in STAGE_IDS},
            "report": local(published["report"]).read_text(),
            "chart": local(published["chart"]).read_text(),
        }
    return found


def differences(stack: AirflowStack, dag_id: str, run_id: str, found: dict, expected: dict) -> str:
    """What differs from the reference, with each differing stage's XComs and task log: a mismatch explains itself."""
    lines = []
    for index, topic in enumerate(TOPICS):
        for part in ("report", "chart"):
            if found[topic][part] != expected[topic][part]:
                lines.append(f"{topic!r}: the {part} differs")
        for stage in STAGE_IDS:
            got, want = found[topic]["stages"][stage], expected[topic]["stages"][stage]
            if got == want:
                continue
            task_id = f"research.{stage}"
            rows = [row for row in stack.task_instance_rows(dag_id, run_id, task_id) if row.get("map_index") == index]
            xcoms = stack.query("SELECT key, value, timestamp FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? "
                                "AND map_index = ?", (dag_id, run_id, task_id, index))
            lines += [f"=== {topic!r} {stage} (map index {index}): normalised here {json.dumps(got)}",
                      f"    the reference (LocalExecutor) {json.dumps(want)}",
                      f"    its XComs as stored {json.dumps(xcoms, default=str)}",
                      f"    its task instance {rows}",
                      stack.task_log(dag_id, run_id, task_id, map_index=index)[-12000:]]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def local_outcomes(tmp_path_factory, research_agents, agent, dags):
    """The LocalExecutor stack's results, the reference; it stops before the distributed stack starts."""
    base = tmp_path_factory.mktemp("local-stack")
    with AirflowStack(home=base / "home", dags_folder=dags,
                      extra_env=connections(research_agents, agent, base / "reports")) as stack:
        stack.wait_for_dag(SYNC, timeout=120)
        run_id = run(stack, SYNC, {"topics": TOPICS})
        return outcomes(stack, SYNC, run_id)


@pytest.fixture(scope="module")
def stack(local_outcomes, tmp_path_factory, research_agents, agent, dags):
    base = tmp_path_factory.mktemp("distributed-stack")
    with DistributedAirflowStack(home=base / "home", dags_folder=dags,
                                 extra_env=connections(research_agents, agent, base / "reports")) as running:
        for dag_id in (SYNC, DEFERRED, FAULT, FAULT_DEFERRED, FAULT_WORKER_FREE):
            running.wait_for_dag(dag_id, timeout=120)
        yield running


def wait_until(condition, timeout: float, what: str, stack: AirflowStack, *, check_alive: bool = True):
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if check_alive:
            stack.check_alive()
        assert time.monotonic() < deadline, f"{what} not seen after {timeout}s\n{stack.diagnostics()}"
        time.sleep(0.25)  # polling interval of a bounded wait
    return value


def streaming(stack: AirflowStack, dag_id: str, run_id: str) -> bool:
    """Whether the stage's log shows an event streamed from the agent (it is mid-stream)."""
    return bool(re.search(r"\[ref-[0-9a-f]{8}\] (state -> |artifact |assistant says)",
                          stack.task_log(dag_id, run_id, "stage")))


def exact(stack: AirflowStack, agent: ReferenceAgentServer, dag_id: str, run_id: str) -> dict:
    """The stage's result, checked against the agent's own final task."""
    result = stack.xcom(dag_id, run_id, "stage")
    final = AgentClient(agent.rpc_url).get(result["task_id"])
    assert result["state"] == final.state.value == "COMPLETED"
    assert result["artifacts"] == [artifact.to_wire() for artifact in final.artifacts]
    return result


# ---------------------------------------------------------------- the pipeline on Celery


@pytest.mark.parametrize("dag_id", [SYNC, DEFERRED], ids=["on-workers", "in-triggerers"])
def test_the_mapped_research_pipeline_gives_the_local_executor_results(stack, local_outcomes, dag_id):
    run_id = run(stack, dag_id, {"topics": TOPICS})
    found = outcomes(stack, dag_id, run_id)
    assert found == local_outcomes, differences(stack, dag_id, run_id, found, local_outcomes)
    hosts = {row["hostname"] for row in stack.task_instance_rows(dag_id, run_id)}
    assert hosts <= {"worker-1", "worker-2"}, hosts  # every task ran on a Celery worker
    if dag_id == DEFERRED:
        assert any(stack.deferral_evidence(dag_id, run_id, f"research.{stage}", map_index=i)["deferred"]
                   for stage in STAGE_IDS for i in range(len(TOPICS)))


# ---------------------------------------------------------------- engine faults


def test_a_worker_dying_mid_stream_is_retried_and_reconnects_to_the_same_remote_task(stack, agent):
    agent.set_behaviour(AgentBehaviour(work_seconds=12, tokens=12))
    before = len(agent.agent.store)
    run_id = stack.trigger(FAULT, {"topic": "worker loss"})
    wait_until(lambda: streaming(stack, FAULT, run_id), 120, "a streamed event", stack)
    worker = stack.worker_of(FAULT, run_id, "stage")
    assert worker in ("worker-1", "worker-2")
    stack.kill_component(worker)
    try:
        assert stack.wait_for_run(FAULT, run_id, timeout=240) == "success", stack.task_states(FAULT, run_id)
    finally:
        stack.start_component(worker)
    assert len(agent.agent.store) == before + 1  # the retry followed the first try's remote task
    result = exact(stack, agent, FAULT, run_id)
    tries = stack.task_tries(FAULT, run_id, "stage")
    assert len(tries) == 2 and tries[-1]["hostname"] != worker, [(t["try_number"], t["hostname"]) for t in tries]
    assert f"Reconnecting to task {result['task_id']}" in stack.task_log(FAULT, run_id, "stage", try_number=2)


@pytest.mark.parametrize("dag_id", [FAULT_DEFERRED, FAULT_WORKER_FREE], ids=["deferred", "worker-free"])
def test_a_triggerer_dying_hands_the_deferred_stream_to_the_other(stack, agent, dag_id):
    """Worker-free, the new triggerer runs the trigger again from its kwargs: its record (XComs of the task
    instance) makes it reconnect to the remote task, and it still ends the task without a worker."""
    agent.set_behaviour(AgentBehaviour(work_seconds=20, tokens=10))
    before = len(agent.agent.store)
    run_id = stack.trigger(dag_id, {"topic": "triggerer loss"})
    wait_until(lambda: streaming(stack, dag_id, run_id), 120, "a streamed event", stack)
    holder = wait_until(lambda: stack.triggerer_of(dag_id, run_id, "stage"), 60, "the trigger's triggerer",
                        stack)
    stack.kill_component(holder)
    try:
        assert stack.wait_for_run(dag_id, run_id, timeout=240) == "success", \
            stack.task_states(dag_id, run_id)
    finally:
        stack.start_component(holder)
    assert len(agent.agent.store) == before + 1, (stack.task_tries(dag_id, run_id, "stage"),
                                                  stack.task_log(dag_id, run_id, "stage")[-12000:])
    result = exact(stack, agent, dag_id, run_id)
    assert result["metadata"]["delivered_by"] in ("stream", "resubscribe", "polling", "already-finished")
    assert len(stack.task_tries(dag_id, run_id, "stage")) == 1  # a trigger moving is no retry
    # each triggerer job writes its own trigger log: the dead one's and its successor's
    files = [p.name for p in stack.task_log_files(dag_id, run_id, "stage")]
    trigger_logs = [name for name in files if ".trigger." in name]
    assert len(trigger_logs) == 2, trigger_logs
    if dag_id == FAULT_WORKER_FREE:  # no task process ever ran: only the two triggerers wrote its log
        assert files == trigger_logs and stack.task_instance_rows(dag_id, run_id, "stage")[0]["queued_dttm"] is None
        assert f"Reconnecting to task {result['task_id']}" in stack.task_log(dag_id, run_id, "stage")
    reference = stack.xcom(dag_id, run(stack, dag_id, {"topic": "triggerer loss"}), "stage")
    assert normalised(result) == normalised(reference)  # nothing lost, nothing twice


def test_a_scheduler_restart_mid_run_leaves_the_stage_running(stack, agent):
    agent.set_behaviour(AgentBehaviour(work_seconds=10, tokens=5))
    before = len(agent.agent.store)
    run_id = stack.trigger(FAULT, {"topic": "scheduler restart"})
    wait_until(lambda: streaming(stack, FAULT, run_id), 120, "a streamed event", stack)
    stack.kill_component("scheduler")
    stack.start_component("scheduler")
    assert stack.wait_for_run(FAULT, run_id, timeout=240) == "success", stack.task_states(FAULT, run_id)
    assert len(agent.agent.store) == before + 1
    exact(stack, agent, FAULT, run_id)


def test_postgres_refusing_connections_for_a_moment_does_not_fail_the_run(stack, agent):
    """Airflow's scheduler exits when the database refuses a connection at the wrong moment (whether it
    does depends on timing): like compose's ``restart: always``, the test starts again what exited."""
    agent.set_behaviour(AgentBehaviour(work_seconds=10, tokens=5))
    before = len(agent.agent.store)
    run_id = stack.trigger(FAULT, {"topic": "database restart"})
    wait_until(lambda: streaming(stack, FAULT, run_id), 120, "a streamed event", stack)
    stack.postgres.restart()
    restarted: list[str] = []

    def finished() -> str | None:
        restarted.extend(stack.restart_exited())
        try:
            state = stack.get_run(FAULT, run_id)["state"]
        except (AirflowStackError, requests.RequestException):
            return None  # the API server may answer an error while its connections recover
        return state if state in ("success", "failed") else None

    state = wait_until(finished, 240, "the end of the run", stack, check_alive=False)
    assert state == "success", (stack.task_states(FAULT, run_id), restarted)
    assert len(agent.agent.store) == before + 1
    exact(stack, agent, FAULT, run_id)
