"""
Starting a remote task at most once per Airflow task instance, across tries.

The remote task id goes into Airflow's task state store the moment the agent answers, so a retry finds
it: a task still running (or not visible yet: delayed visibility looks the same) or already COMPLETED is
reconnected to; only one that ended without a result (FAILED, CANCELED, REJECTED) is replaced by a new
one. Without a task state store (no durable storage configured) every try starts afresh, as the log says.
"""

from __future__ import annotations

from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.models import Message, TaskState

#: The task state store key of the remote task id.
TASK_ID_KEY = "agentvault_task_id"

#: Ended states that a new try should replace with a new remote task.
REPLACEABLE = {TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}


def start_or_reconnect(client: AgentClient, message: Message, store: Any, log: Any) -> str:
    """The id of this task instance's remote task: an earlier try's if it can still deliver, else a new one."""
    previous = store.get(TASK_ID_KEY) if store is not None else None
    if previous:
        try:
            state: TaskState | None = client.get(str(previous)).state
        except errors.TaskNotFoundError:
            state = None
        if state not in REPLACEABLE:
            log.info("Reconnecting to task %s started by an earlier try (%s)", previous,
                     state.value if state else "not visible yet")
            return str(previous)
        log.warning("Task %s of an earlier try ended %s; starting a new one", previous, state.value)
    elif store is None:
        log.warning("No task state store: a retry of this task cannot find the remote task it started")
    task_id = client.send(message)
    if store is not None:
        store.set(TASK_ID_KEY, task_id)
    log.info("Started task %s on agent %s", task_id, errors.redact_url(client.rpc_url))
    return task_id
