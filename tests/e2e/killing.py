"""Marking a deferred task failed under a real stack, and waiting (bounded) until the agent canceled its task."""

from __future__ import annotations

import time
from typing import Any

import requests


def wait_for_log(stack: Any, dag_id: str, run_id: str, task_id: str, text: str, timeout: float = 120) -> None:
    """Until ``text`` is in the task's log: e.g. the trigger is running (``on_kill`` reaches only that)."""
    deadline = time.monotonic() + timeout
    while text not in stack.task_log(dag_id, run_id, task_id):
        assert time.monotonic() < deadline, stack.task_states(dag_id, run_id)
        time.sleep(0.5)  # polling interval of a bounded wait for the running trigger


def mark_failed_until_canceled(stack: Any, rpc_url: str, dag_id: str, run_id: str, task_id: str, agent_task: str,
                               timeout: float = 60) -> str:
    """Mark the task failed through the REST API; the remote task's state once CANCELED (or the bound is spent)."""
    stack.api("PATCH", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json_body={"new_state": "failed"})
    deadline = time.monotonic() + timeout
    state = None
    while state != "CANCELED":
        assert time.monotonic() < deadline, f"remote task still {state}\n{stack.component_log('triggerer')[-3000:]}"
        answer = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get",
                                              "params": {"id": agent_task}}, timeout=5).json()
        state = answer["result"]["state"]
        time.sleep(0.5)  # polling interval of a bounded wait for the cancellation
    return state
