"""
A hand-written orchestrator's fixed-sleep waiting strategy, reproduced with our client, for
side-by-side measurements.

Its numbers are hard-coded, as in the original: sleep 10 s after starting the task, check 3 times that
it exists, try the SSE subscription 3 times 5 s apart on "Task not found", then poll every 2 s.
"""

from __future__ import annotations

import time

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.models import Task

INITIAL_SLEEP = 10.0
VERIFY_ATTEMPTS = 3
VERIFY_SLEEP = 1.0
SSE_ATTEMPTS = 3
SSE_RETRY_DELAY = 5.0
POLL_SLEEP = 2.0


def fixed_sleep_wait(client: AgentClient, task_id: str) -> Task:
    """Wait for ``task_id`` the way a fixed-sleep orchestrator does; return the final task."""
    time.sleep(INITIAL_SLEEP)
    for _ in range(VERIFY_ATTEMPTS):
        try:
            client.get(task_id)
            break
        except errors.TaskNotFoundError:
            time.sleep(VERIFY_SLEEP)
    for _ in range(SSE_ATTEMPTS):
        try:
            for _event in client.subscribe(task_id, read_timeout=600):
                pass
            break
        except (errors.TaskNotFoundError, errors.StreamDisconnectedError):
            time.sleep(SSE_RETRY_DELAY)
    while True:
        task = client.get(task_id)
        if task.state.ends_wait:
            return task
        time.sleep(POLL_SLEEP)
