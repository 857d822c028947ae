"""
A whole compact stage in the triggerer: the worker-free form (Airflow 3.3+, ``start_from_trigger``).

The scheduler starts the task here, never on a worker: the trigger resolves its inputs, starts the remote
task or reconnects to an earlier try's (the same routine as the worker, :func:`remote_task.starting`,
over this task instance's XComs instead of the task state store, which the triggerer cannot reach),
waits until it is visible, follows it, writes the result to XCom and ends the Airflow task with
``TaskSuccessEvent``. Everything else resumes the task on a worker with the event the stream trigger would send
(``execute_complete``: the typed error, the retry policy, offloading a large result) or, for what only a
worker can do (an input it must check or load, see :func:`needs_worker`), ``{"status": "fallback"}``:
the worker then runs the stage as before, and its record still finds the remote task.

Durable: every decision is recorded in XComs of the task instance before the next step (a send under way,
the remote id, that it was seen, when the stage began), and those survive new tries that start in the
triggerer. A trigger moved to another triggerer runs again from its kwargs and continues from the record:
it reconnects through ``tasks/get``, never sends twice, keeps its deadline. No credential is in the
kwargs: only the connection id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_agentvault import result_storage
from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.links import AgentCardLink
from airflow_agentvault.operators.common import build_message
from airflow_agentvault.operators.remote_task import (
    KEYS,
    SEEN_KEY,
    SENDING_KEYS,
    Record,
    conversation_id,
    starting,
)
from airflow_agentvault.operators.stage_timing import StageTiming, shared_timing
from airflow_agentvault.operators.worker_free import XCOM_INPUT
from airflow_agentvault.protocol import errors, receiver, tracing
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.follow import Follower
from airflow_agentvault.protocol.result import DEFAULT_MAX_RESULT_BYTES
from airflow_agentvault.protocol.timing import Timing
from airflow_agentvault.stage_tracing import traced_trigger
from airflow_agentvault.triggers.agentvault import TRANSPORTED, cancel_agent_task, done_event
from airflow_agentvault.triggers.events import error_event

#: The worker resumes with this status to run the stage itself (see :func:`needs_worker`).
STATUS_FALLBACK = "fallback"
#: When this try's stage began and its follow step began: a moved trigger keeps its deadlines.
STARTED_KEY = "agentvault_started"

#: Which run of this try may send (see :meth:`AgentVaultStageTrigger._claim`): the last writer wins.
CLAIM_KEY = "agentvault_send_claim"
#: Seconds between writing a claim and reading it back. Airflow gives a trigger no compare-and-set (XCom,
#: Variable and asset state writes through the triggerer are plain upserts) and no way to learn which
#: triggerer owns it now (both runs have the same trigger id; the owning job is not exposed to triggers),
#: so two runs of one try arbitrate by the last claim written. That is sound while a run that won records
#: its send under way (a few XCom round trips through the triggerer: milliseconds) within this time: a run
#: whose claim lands later then finds that record before it would send, and waits for the task it starts.
#: Longer only guards a more stalled triggerer, and delays every worker-free stage's first send as much.
CLAIM_SETTLE = 0.5
RETURN_KEY = "return_value"
WORKER_FREE_LINE = "Worker-free: this stage started in the triggerer (try %s); it holds no worker slot"


class InputNeedsWorker(Exception):
    """The stage's input is one only a worker can check or load: the stage falls back to the worker."""


class XComRecord:
    """The trigger's record: XComs of its own task instance (``GetXCom``/``SetXCom``, which the triggerer serves)."""

    def __init__(self, ti: Any) -> None:
        self.where = {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "map_index": ti.map_index}

    @staticmethod
    def _xcom() -> Any:
        from airflow.sdk.execution_time.xcom import XCom  # the configured backend

        return XCom

    async def get(self, key: str, **where: Any) -> Any:
        return await self._xcom().aget_one(key=key, **{**self.where, **where})

    async def put(self, item: tuple[str, Any]) -> None:
        key, value = item
        await self._xcom().aset(key, value, **self.where)

    async def load(self, keys: tuple[str, ...] = KEYS) -> Record:
        """The record's ``keys`` (missing ones read as unset): each read is a round trip through the triggerer."""
        values = await asyncio.gather(*(self.get(key) for key in keys))
        return Record.of(dict(zip(keys, values, strict=True)))


async def resolve_inputs(value: Any, record: XComRecord) -> Any:
    """Swap the upstream-XCom placeholders in ``value`` for the upstream tasks' values (unmapped: -1)."""
    if isinstance(value, dict) and set(value) == {XCOM_INPUT}:
        ref = value[XCOM_INPUT]
        return await record.get(ref["key"], task_id=ref["task_id"], map_index=-1)
    if isinstance(value, dict):
        return {key: await resolve_inputs(item, record) for key, item in value.items()}
    if isinstance(value, list):
        return [await resolve_inputs(item, record) for item in value]
    return value


class AgentVaultStageTrigger(BaseTrigger):
    """
    Start (or reconnect), wait until visible, follow, and end the task: a compact stage, worker-free.

    ``text``, ``data``, ``message_metadata`` and ``timing`` are the operator's template fields, rendered
    here by Airflow before :meth:`run`; the other keywords are the operator's options, as constants.

    Events: ``TaskSuccessEvent()``, the result already in XCom ``return_value``; else, for the worker,
    ``{"status": "done", ...}`` (an outcome that is not a result here), ``{"status": "error", ...}``
    or ``{"status": "fallback", "reason"}``.
    """

    def __init__(self, conn_id: str, text: str | None = None, data: Any = None, message_metadata: Any = None,
                 timing: Any = None, cancel_on_kill: bool = True, resend_if_unsure: bool = False,
                 max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES, truncate_result: bool = False,
                 result_storage: str = "", ask_person: bool = False, push: str | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.text, self.data, self.message_metadata, self.timing = text, data, message_metadata, timing
        self.cancel_on_kill = bool(cancel_on_kill)
        self.resend_if_unsure = bool(resend_if_unsure)
        self.max_result_bytes = int(max_result_bytes)
        self.truncate_result = bool(truncate_result)
        self.result_storage = result_storage or ""
        self.ask_person = bool(ask_person)
        self.push = push
        self.agent_task_id: str | None = None  # for on_kill, once known
        # Not serialized: tests replace them.
        self._clock = time.time
        self._sleep = asyncio.sleep
        self._record: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The operator's options and (unrendered) template fields; the connection id, never a credential."""
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "conn_id": self.conn_id, "text": self.text, "data": self.data, "message_metadata": self.message_metadata,
            "timing": self.timing, "cancel_on_kill": self.cancel_on_kill, "resend_if_unsure": self.resend_if_unsure,
            "max_result_bytes": self.max_result_bytes, "truncate_result": self.truncate_result,
            "result_storage": self.result_storage, "ask_person": self.ask_person, "push": self.push}

    @traced_trigger("stage.trigger")
    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        self.log.info(WORKER_FREE_LINE, getattr(ti, "try_number", "?"))
        record = self._record = self._record or XComRecord(ti)
        try:
            yield await self._stage(ti, record, *await self._inputs(record))
        except InputNeedsWorker as exc:
            yield self._fallback(f"its input needs the worker ({exc})")
        except TRANSPORTED as exc:
            self.log.warning("Stopped the stage (task %s): %s", self.agent_task_id, exc)
            yield TriggerEvent(error_event(exc, task_id=self.agent_task_id))

    async def _inputs(self, record: XComRecord) -> tuple[Any, Timing]:
        """The message to send and the validated timing (passed on, not kept: an input may be large)."""
        try:
            data = await resolve_inputs(self.data, record)
            data = await asyncio.to_thread(result_storage.resolve_references, data)  # object storage blocks
            return build_message(self.text, data, self.message_metadata), shared_timing(self.timing)
        except (ValueError, OSError) as exc:  # the worker fails it (or loads it) with the usual message
            raise InputNeedsWorker(f"{type(exc).__name__}: {exc}") from None

    async def _stage(self, ti: Any, record: XComRecord, message: Any, timing: Timing) -> TriggerEvent:
        hook = AgentVaultHook(self.conn_id)
        began, claimed, client = await self._prepare(ti, record, timing, hook)
        async with client:
            tracing.identify(client.agent)
            self.agent_task_id = await client.run(
                starting(client.agent, message, claimed, record.put, self.log, context_id=conversation_id({"ti": ti}, ti.task_id),
                         attempt=ti.try_number, resend_if_unsure=self.resend_if_unsure), sleep=self._sleep)
            del message, claimed  # a stage that waits for hours keeps no copy of its input
            follower = Follower(client.agent, timing, logger=self.log, clock=self._clock)
            # Unpacked into the call, so no frame here keeps the task it saw while the follow waits.
            outcome = await receiver.follow(client, follower, self.agent_task_id, push_mode=self.push, sleep=self._sleep,
                                            **await self._until_visible(client, follower, timing, began, record))
            agent_url = errors.redact_url(client.rpc_url)
        try:
            result, too_big = result_storage.fitted(
                outcome.task, agent_url=agent_url, metadata=outcome.metadata(), status_message=outcome.status_message,
                max_result_bytes=self.max_result_bytes, truncate=self.truncate_result, storage=self.result_storage,
                asking=self.ask_person)
        except errors.AgentVaultError as exc:  # FAILED, CANCELED, a question, too large: judged on the worker
            self.log.info("Task %s ended %s (%s): the worker takes it from here", self.agent_task_id,
                          outcome.task.state.value, type(exc).__name__)
            return TriggerEvent(done_event(self.agent_task_id, outcome))
        if too_big:
            self.log.info("Task %s's result is above the XCom limit: the worker stores it", self.agent_task_id)
            return TriggerEvent(done_event(self.agent_task_id, outcome))
        self.log.info("Worker-free: task %s ended %s; the result goes to XCom from the triggerer", self.agent_task_id,
                      outcome.task.state.value)
        # Written through the XCom backend here, not as the event's ``xcoms``: Airflow 3.3.2 stores those as
        # a JSON string (a task reading it gets a str) and bypasses a custom backend.
        await asyncio.gather(record.put((AgentCardLink().xcom_key, hook.agent_card_url)), record.put((RETURN_KEY, result)))
        return TaskSuccessEvent()

    async def _until_visible(self, client: AsyncAgentClient, follower: Follower, timing: Timing, began: dict[str, Any],
                             record: XComRecord) -> dict[str, Any]:
        """Wait until the task is visible and record it: what the follow starts from (the task as seen, the deadline)."""
        assert self.agent_task_id is not None
        wait = follower.visibility_wait(self.agent_task_id, started=began["at"], deadline=timing.deadline_after(began["at"]))
        visible = await client.run(follower.wait_until_visible(wait), sleep=self._sleep)
        follow_at = began.get("follow_at") or self._clock()
        await asyncio.gather(record.put((SEEN_KEY, self.agent_task_id)),
                             *([] if "follow_at" in began else [record.put((STARTED_KEY, {**began, "follow_at": follow_at}))]))
        return {"seen": visible, "deadline": StageTiming.begin(timing, started_at=follow_at).deadline}

    async def _prepare(self, ti: Any, record: XComRecord, timing: Timing,
                       hook: AgentVaultHook) -> tuple[dict[str, Any], Record, AsyncAgentClient]:
        """When the stage began, the record to start from, and the client: independent round trips, so at once
        (the claim's settle hides the connection and agent card reads); the client is closed if another fails."""
        began, claimed, client = await asyncio.gather(
            self._began(ti, record), self._claim(ti, record, timing), hook.aget_client(), return_exceptions=True)
        failed = [r for r in (began, claimed, client) if isinstance(r, BaseException)]
        if failed:
            if isinstance(client, AsyncAgentClient):
                await client.aclose()
            raise failed[0]
        assert isinstance(began, dict) and isinstance(claimed, Record) and isinstance(client, AsyncAgentClient)
        return began, claimed, client

    async def _claim(self, ti: Any, record: XComRecord, timing: Timing) -> Record:
        """
        The record to start from, once this run may send: another run of this try may be sending right now.

        Airflow may run one trigger on two triggerers for a moment (one missed its heartbeats and another
        took the trigger over). Each run writes a claim and reads it back after :data:`CLAIM_SETTLE`: the
        last writer sends, the others wait (bounded) for the task id it records and reconnect to it. A run
        whose claim is still its own when read back looks at the record once more: a run that won before
        this claim landed is sending already, and this one waits for its task too.
        """
        now = await record.load()
        if now.task_id or now.pending is not None and now.pending != ti.try_number:
            return now  # an id to reconnect to, or an earlier try's send (starting() handles both)
        if now.pending is None:
            token = uuid.uuid4().hex
            await record.put((CLAIM_KEY, {"try": ti.try_number, "by": token}))
            await self._sleep(CLAIM_SETTLE)
            claim, sending = await asyncio.gather(record.get(CLAIM_KEY), record.load(SENDING_KEYS))
            if isinstance(claim, dict) and claim.get("by") == token:
                if sending.task_id or sending.pending != ti.try_number:
                    return dataclasses.replace(now, task_id=sending.task_id, pending=sending.pending)
        self.log.info("Another run of this try is sending the message (a trigger moved or ran twice): waiting "
                      "for the task it starts")
        give_up = self._clock() + timing.read_timeout + CLAIM_SETTLE
        while self._clock() < give_up:
            await self._sleep(CLAIM_SETTLE)
            now = await record.load()
            if now.task_id:
                return now
        return now  # no id: starting() treats it as a send of unknown outcome

    async def _began(self, ti: Any, record: XComRecord) -> dict[str, Any]:
        """When this try's stage began: recorded once, so a moved trigger keeps the same deadline."""
        began = await record.get(STARTED_KEY)
        if isinstance(began, dict) and began.get("try") == ti.try_number and isinstance(began.get("at"), int | float):
            return began
        began = {"try": ti.try_number, "at": self._clock()}
        await record.put((STARTED_KEY, began))
        return began

    def _fallback(self, reason: str) -> TriggerEvent:
        self.log.info("The stage resumes on a worker: %s", reason)
        return TriggerEvent({"status": STATUS_FALLBACK, "reason": reason})

    async def on_kill(self) -> None:
        """A user marked the task failed (or cleared it): cancel the remote task too, if ``cancel_on_kill``."""
        task_id = self.agent_task_id
        if task_id is None and self._record is not None:  # killed before this run learnt it: the record knows
            task_id = (await self._record.load()).task_id
        await cancel_agent_task(self.conn_id, task_id, self.log, cancel=self.cancel_on_kill, ti=self.task_instance)

    async def cleanup(self) -> None:
        """Never cancels: cleanup also runs when the trigger moves to another triggerer or the triggerer stops."""
        await super().cleanup()
