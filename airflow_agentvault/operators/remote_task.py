"""
Starting a remote task at most once per Airflow task instance, across tries.

The remote task id goes into a durable record the moment the agent answers, so a retry finds it: a
task still running (or not visible yet: delayed visibility looks the same) or already COMPLETED is
reconnected to; one that ended without a result (FAILED, CANCELED, REJECTED) is replaced by a new one,
and so is one the agent no longer knows although this task instance saw it (``SEEN_KEY``: the agent
restarted and lost it). A send whose answer was lost after it reached the agent is remembered too, so
that a retry the user allowed (``resend_if_unsure``) says that the first task may still run, and so is
a send under way (``PENDING_KEY``), so that whoever starts this task instance again after a crash between
the send and its record looks for that task before sending again.

The decision is one routine, :func:`starting`, over the core's effects: the worker runs it with the
blocking client over the task state store, the worker-free trigger with the async client over its task
instance's XComs. Its reads are taken once, before it runs (:class:`Record`); its writes are effects
(``Notify(store.put, (key, value))``) that either runner performs, awaiting them where the store is async.
Without a record (no durable storage configured) every try starts afresh, as the log says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_agentvault.protocol import errors, operations, tracing
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.exchange import Notify, Program
from airflow_agentvault.protocol.models import Message, Task, TaskState

#: Record keys: the remote task id; the id once the agent showed it; a send of unknown outcome; a send under way.
TASK_ID_KEY = "agentvault_task_id"
SEEN_KEY = "agentvault_task_seen"
UNSURE_KEY = "agentvault_send_unsure"
PENDING_KEY = "agentvault_send_pending"
KEYS = (TASK_ID_KEY, SEEN_KEY, UNSURE_KEY, PENDING_KEY)
#: The keys that say whether a send is under way or done (a task id, once recorded, wins over a pending send).
SENDING_KEYS = (TASK_ID_KEY, PENDING_KEY)

#: Ended states that a new try should replace with a new remote task.
REPLACEABLE = {TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}


@dataclass(frozen=True)
class Record:
    """What earlier tries (or an earlier run of this try) recorded: read once, before deciding."""

    task_id: str | None = None
    seen: str | None = None
    unsure: bool = False
    pending: Any = None

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Record:
        task_id = values.get(TASK_ID_KEY)
        return cls(str(task_id) if task_id else None, values.get(SEEN_KEY) or None, bool(values.get(UNSURE_KEY)),
                   values.get(PENDING_KEY) or None)


def starting(agent: operations.Agent, message: Message, record: Record | None, put: Callable[[Any], Any] | None,
             log: Any, *, context_id: str | None = None, attempt: int | None = None, resend_if_unsure: bool = True,
             ) -> Program[str]:
    """
    The id of this task instance's remote task: an earlier try's if it can still deliver, else a new one.

    ``put((key, value))`` writes the record (``None``: no durable record). ``context_id``: this task
    instance's conversation id; where the dialect lists a conversation's tasks (A2A 1.0), a send whose
    answer was lost is resolved by finding the task it started. ``attempt``: this try's number, when the
    same try may run again (a trigger moved to another triggerer): a send of this very try whose outcome
    is unknown is then an :class:`AmbiguousSendError` unless ``resend_if_unsure``, as a lost answer is.
    """
    previous = record.task_id if record is not None else None
    if previous:
        lost = False
        try:
            state: TaskState | None = (yield from operations.get(agent, previous)).state
        except errors.TaskNotFoundError:
            state, lost = None, record is not None and record.seen == previous
        if lost:
            log.warning("Task %s of an earlier try is gone from the agent (it may have restarted); starting a new "
                        "one", previous)
        elif state not in REPLACEABLE:
            log.info("Reconnecting to task %s started by an earlier try (%s)", previous,
                     state.value if state else "not visible yet")
            tracing.event(tracing.RECONNECT, **{"agentvault.task.id": str(previous), "agentvault.task.state":
                                                state.value if state else "not visible yet"})
            return previous
        else:
            log.warning("Task %s of an earlier try ended %s; starting a new one", previous, state.value)
    elif record is None:
        log.warning("No task state store: a retry of this task cannot find the remote task it started")
    elif record.unsure or record.pending:
        adopted = yield from _find_started(agent, context_id)
        if adopted is not None:
            log.warning("Following task %s, which the agent lists in this task's conversation %s: an earlier "
                        "send started it, though its answer was lost", adopted.id, context_id)
            yield from _record(put, TASK_ID_KEY, adopted.id)
            return adopted.id
        if record.pending is not None and record.pending == attempt and not resend_if_unsure:
            raise errors.AmbiguousSendError(
                "this try was stopped (its triggerer moved) between sending the message and recording the task "
                "it started: the agent may run that task already; resend_if_unsure allows sending again",
                agent_url=agent.endpoint, method="send")
        log.warning("An earlier send may have started a task the agent still runs (its answer was lost); "
                    "sending again%s: that task, if it exists, is orphaned",
                    " as resend_if_unsure allows" if record.unsure else "")
    yield from _record(put, PENDING_KEY, attempt if attempt is not None else True)
    try:
        task_id = yield from operations.send(agent, message, context_id=context_id)
    except errors.AmbiguousSendError as exc:
        adopted = yield from _find_started(agent, context_id)
        if adopted is None:
            yield from _record(put, UNSURE_KEY, True)
            raise
        log.warning("The answer to the send was lost (%s), but the agent lists task %s in this task's "
                    "conversation %s: following it instead of sending again", exc.detail, adopted.id, context_id)
        task_id = adopted.id
    except errors.AgentVaultError:
        yield from _record(put, PENDING_KEY, False)  # the agent surely did not start it: nothing to look for
        raise
    yield from _record(put, TASK_ID_KEY, task_id)  # supersedes the send under way: readers look at the id first
    log.info("Started task %s on agent %s", task_id, errors.redact_url(agent.endpoint))
    return task_id


def _record(put: Callable[[Any], Any] | None, key: str, value: Any) -> Program[None]:
    if put is not None:
        yield Notify(put, (key, value))


def _find_started(agent: operations.Agent, context_id: str | None) -> Program[Task | None]:
    if not context_id:
        return None
    found = yield from operations.find_started(agent, context_id)
    return found


class StateStoreRecord:
    """The worker's record: the task state store, and (``mirror``) this task instance's XComs as well."""

    def __init__(self, store: Any, ti: Any = None, mirror: bool = False) -> None:
        self.store, self.ti, self.mirror = store, ti, mirror and ti is not None

    def get(self, key: str) -> Any:
        value = self.store.get(key) if self.store is not None else None
        if value is None and self.mirror:  # written by a try that started in the triggerer
            value = self.ti.xcom_pull(task_ids=self.ti.task_id, key=key, map_indexes=self.ti.map_index)
        return value

    def put(self, item: tuple[str, Any]) -> None:
        key, value = item
        if self.store is not None:
            self.store.set(key, value)
        if self.mirror:  # a later try that starts in the triggerer reads only XComs
            self.ti.xcom_push(key=key, value=value)

    def load(self) -> Record | None:
        if self.store is None and not self.mirror:
            return None
        return Record.of({key: self.get(key) for key in KEYS})


def start_or_reconnect(client: AgentClient, message: Message, store: Any, log: Any,
                       context_id: str | None = None, *, ti: Any = None, mirror: bool = False) -> str:
    """:func:`starting` on a worker, over the task state store (``store``: ``get``/``set``, or None)."""
    durable = StateStoreRecord(store, ti, mirror)
    record = durable.load()
    return client.run(starting(client.agent, message, record, durable.put if record is not None else None, log,
                               context_id=context_id))


def mark_seen(store: Any, task_id: str, *, ti: Any = None, mirror: bool = False) -> None:
    """Record that the agent showed ``task_id``: if a retry finds it unknown, the agent lost it."""
    if store is not None or (mirror and ti is not None):
        StateStoreRecord(store, ti, mirror).put((SEEN_KEY, task_id))


def conversation_id(context: Any, task_id: str) -> str:
    """One conversation id per task instance (DAG, run, task, map index), the same on every try."""
    ti = context.get("ti")
    parts = (getattr(ti, "dag_id", "dag"), getattr(ti, "run_id", "run"), task_id, getattr(ti, "map_index", -1))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "airflow-agentvault:" + "/".join(str(p) for p in parts)))
