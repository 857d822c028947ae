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

import uuid
from typing import Any

from airflow_agentvault.protocol import errors, operations, tracing
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.models import Message, Task, TaskState

#: Task state store keys: the remote task id; the id once the agent showed it; a send of unknown outcome.
TASK_ID_KEY = "agentvault_task_id"
SEEN_KEY = "agentvault_task_seen"
UNSURE_KEY = "agentvault_send_unsure"

#: Ended states that a new try should replace with a new remote task.
REPLACEABLE = {TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}


def start_or_reconnect(client: AgentClient, message: Message, store: Any, log: Any,
                       context_id: str | None = None) -> str:
    """
    The id of this task instance's remote task: an earlier try's if it can still deliver, else a new one.

    ``context_id``: this task instance's conversation id. Where the dialect can list a conversation's
    tasks (A2A 1.0), a send whose answer was lost is resolved by finding the task it started.
    """
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
            tracing.event(tracing.RECONNECT, **{"agentvault.task.id": str(previous), "agentvault.task.state":
                                                state.value if state else "not visible yet"})
            return str(previous)
        else:
            log.warning("Task %s of an earlier try ended %s; starting a new one", previous, state.value)
    elif store is None:
        log.warning("No task state store: a retry of this task cannot find the remote task it started")
    elif store.get(UNSURE_KEY):
        adopted = _find_started(client, context_id)
        if adopted is not None:
            log.warning("Following task %s, which the agent lists in this task's conversation %s: an earlier "
                        "try's send started it, though its answer was lost", adopted.id, context_id)
            store.set(TASK_ID_KEY, adopted.id)
            return adopted.id
        log.warning("An earlier try's send may have started a task the agent still runs (its answer was lost); "
                    "sending again as resend_if_unsure allows: that task, if it exists, is orphaned")
    try:
        task_id = client.send(message, context_id=context_id)
    except errors.AmbiguousSendError as exc:
        adopted = _find_started(client, context_id)
        if adopted is None:
            if store is not None:
                store.set(UNSURE_KEY, True)
            raise
        log.warning("The answer to the send was lost (%s), but the agent lists task %s in this task's "
                    "conversation %s: following it instead of sending again", exc.detail, adopted.id, context_id)
        task_id = adopted.id
    if store is not None:
        store.set(TASK_ID_KEY, task_id)
    log.info("Started task %s on agent %s", task_id, errors.redact_url(client.rpc_url))
    return task_id


def mark_seen(store: Any, task_id: str) -> None:
    """Record that the agent showed ``task_id``: if a retry finds it unknown, the agent lost it."""
    if store is not None:
        store.set(SEEN_KEY, task_id)


def _find_started(client: AgentClient, context_id: str | None) -> Task | None:
    return client.run(operations.find_started(client.agent, context_id)) if context_id else None


def conversation_id(context: Any, task_id: str) -> str:
    """One conversation id per task instance (DAG, run, task, map index), the same on every try."""
    ti = context.get("ti")
    parts = (getattr(ti, "dag_id", "dag"), getattr(ti, "run_id", "run"), task_id, getattr(ti, "map_index", -1))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "airflow-agentvault:" + "/".join(str(p) for p in parts)))
