"""
Real agent restarts: the reference agent's process is killed (SIGKILL) while a stage streams its task, and
started again on the same port.

* With ``--task-store`` the agent knows the task after the restart and runs the cut-off work again from
  its start: the stage ends with exactly the answer the agent gives without a restart, and the agent holds
  one task (the stage never sent a second).
* Without it the agent has forgotten the task: the stage ends with ``TaskLostError`` naming the agent and
  the task, within ``lost_grace`` of the agent answering again.

Each in the blocking operator (``compact-sync``), the operator deferred to its trigger on asyncio
(``compact-deferred``) and, on Airflow 3.3, the worker-free stage (its trigger started by the scheduler).
A thread watches the agent's own counters and kills it once the stage's subscription is open; every wait
is bounded and the process is killed at the end of each test.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentvault_stack.agent.behaviour import AgentBehaviour
from agentvault_stack.agent.contract import SkillRequest
from agentvault_stack.agent.skills import ECHO_SKILL
from airflow_agentvault.compat import WORKER_FREE_STAGES
from airflow_agentvault.protocol.errors import TaskLostError

from faults.reliability import Methods
from faults.servers import RestartableAgent
from faults.test_fault_suite import MARGIN, Server, agent_truth, assert_typed_failure, assert_within
from faults.test_operator_faults import CONN_ID, TIMING, assert_result_is_the_truth, run_stage

pytestmark = pytest.mark.integration

TEXT = "restart me: one two three four five six seven eight nine ten"
#: Each task streams its answer a word at a time, 10 words a second: about two seconds of stream to cut.
SWITCHES = ("--work-seconds", "0.4", "--tokens-per-second", "10")
FORMS = ("compact-sync", "compact-deferred") + (("compact-worker-free",) if WORKER_FREE_STAGES else ())


class Killer(threading.Thread):
    """Kills the agent once a subscription is open and its task is working, then starts it again."""

    def __init__(self, agent: RestartableAgent, bound: float = 20.0) -> None:
        super().__init__(name="agent-killer", daemon=True)
        self.agent, self.bound = agent, bound
        self.killed_with: dict[str, Any] | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.bound
            while time.monotonic() < deadline:
                stats = self.agent.stats()
                if stats["requests"].get("tasks/sendSubscribe") and stats["task_states"].get("WORKING"):
                    self.killed_with = stats
                    self.agent.restart()
                    return
                time.sleep(0.02)  # the agent's counters are polled: nothing to wait on besides them
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc


def restarted_stage(agent: RestartableAgent, form: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Server, Any]:
    server = Server("reference", agent.base_url, "/a2a/", "agentvault", "agentvault",
                    Methods("tasks/send", "tasks/get", "tasks/sendSubscribe"), TEXT)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}",
                       json.dumps({"conn_type": "agentvault", "host": server.rpc_url()}))
    killer = Killer(agent)
    killer.start()
    run = run_stage(server, form)
    killer.join(killer.bound + 30)
    assert killer.failure is None, killer.failure
    assert killer.killed_with is not None, "the agent was never killed mid-stream: the case proves nothing"
    assert killer.killed_with["tasks"] == 1
    assert agent.starts == 2
    return server, run


def expected_answer() -> str:
    message = {"role": "user", "parts": [{"type": "text", "content": TEXT}]}
    return ECHO_SKILL.answer(SkillRequest.from_messages([message], AgentBehaviour(), []))


@pytest.mark.parametrize("form", FORMS)
def test_an_agent_that_keeps_its_tasks_finishes_the_task_after_a_restart(
        form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with RestartableAgent(*SWITCHES, "--task-store", str(tmp_path / "tasks.sqlite"),
                          name=f"restart-kept-{form}") as agent:
        server, run = restarted_stage(agent, form, monkeypatch)
        assert_result_is_the_truth(server, server.rpc_url(), run)
        assert run.result is not None and run.result["text"] == expected_answer()
        stats = agent.stats()
        assert stats["tasks"] == 1 and stats["task_states"] == {"COMPLETED": 1}  # one task, never a second
        assert stats["requests"].get("tasks/send") is None  # nothing was sent to the restarted agent
        assert agent_truth(server, run.task_id).state.value == "COMPLETED"
    assert_within(run, TIMING["overall_timeout"] + MARGIN)


@pytest.mark.parametrize("form", FORMS[:2])  # the worker-free stage meets a forgetful agent in the fault suite
def test_an_agent_that_forgets_its_tasks_ends_the_stage_as_lost(
        form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with RestartableAgent(*SWITCHES, name=f"restart-forgot-{form}") as agent:
        server, run = restarted_stage(agent, form, monkeypatch)
        assert run.task_id is not None
        assert_typed_failure(run, server.rpc_url(), TaskLostError, names=run.task_id)
        stats = agent.stats()
        assert stats["tasks"] == 0 and stats["requests"].get("tasks/send") is None
    # the restart (a process start) plus lost_grace of "Task not found"
    assert_within(run, TIMING["lost_grace"] + 2 * MARGIN)
