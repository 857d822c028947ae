"""
Starting a remote task at most once per Airflow task instance, across tries.

The remote task id goes into Airflow's task state store the moment the agent answers, so a retry finds
it: a task still running (or not visible yet: delayed visibility looks the same) or already COMPLETED is
reconnected to; one that ended without a result (FAILED, CANCELED, REJECTED) is replaced by a new one,
and so is one the agent no longer knows although this task instance saw it (:func:`mark_seen`: the agent
restarted and lost it). A send whose answer was lost after it reached the agent is remembered too, so
that a retry the user allowed (``resend_if_unsure``) says that the first task may still run. Without a
task state store (no durable storage configured) every try starts afresh, as the log says.
"""

from __future__ import annotations

from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.models import Message, TaskState

#: Task state store keys: the remote task id; the id once the agent showed it; a send of unknown outcome.
TASK_ID_KEY = "agentvault_task_id"
SEEN_KEY = "agentvault_task_seen"
UNSURE_KEY = "agentvault_send_unsure"

#: Ended states that a new try should replace with a new remote task.
REPLACEABLE = {TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}


def start_or_reconnect(client: AgentClient, message: Message, store: Any, log: Any) -> str:
    """The id of this task instance's remote task: an earlier try's if it can still deliver, else a new one."""
    previous = store.get(TASK_ID_KEY) if store is not None else None
    if previous:
        lost = False
        try:
            state: TaskState | None = client.get(str(previous)).state
        except errors.TaskNotFoundError:
            state, lost = None, store.get(SEEN_KEY) == previous
        if lost:
            log.warning("Task %s of an earlier try is gone from the agent (it may have restarted); starting a new "
                        "one", previous)
        elif state not in REPLACEABLE:
            log.info("Reconnecting to task %s started by an earlier try (%s)", previous,
                     state.value if state else "not visible yet")
            return str(previous)
        else:
            log.warning("Task %s of an earlier try ended %s; starting a new one", previous, state.value)
    elif store is None:
        log.warning("No task state store: a retry of this task cannot find the remote task it started")
    elif store.get(UNSURE_KEY):
        log.warning("An earlier try's send may have started a task the agent still runs (its answer was lost); "
                    "sending again as resend_if_unsure allows: that task, if it exists, is orphaned")
    try:
        task_id = client.send(message)
    except errors.AmbiguousSendError:
        if store is not None:
            store.set(UNSURE_KEY, True)
        raise
    if store is not None:
        store.set(TASK_ID_KEY, task_id)
    log.info("Started task %s on agent %s", task_id, errors.redact_url(client.rpc_url))
    return task_id


def mark_seen(store: Any, task_id: str) -> None:
    """Record that the agent showed ``task_id``: if a retry finds it unknown, the agent lost it."""
    if store is not None:
        store.set(SEEN_KEY, task_id)
