"""
Triggers for deferrable mode: wait for an agent task in the triggerer instead of holding a worker slot.

``AgentVaultTaskExistsTrigger`` waits until ``tasks/get`` sees a task, with the sensor's growing,
bounded interval. ``AgentVaultStreamTrigger`` follows a task to its end with the async follower (SSE
with bounded retries, then polling), writing each event to the trigger log, which Airflow 3 shows in
the task log. Both yield exactly one event; they transport what they saw and do not judge it: the
operator's ``execute_complete`` turns the event into a result or a typed error with
:func:`~airflow_agentvault.triggers.events.event_task`, through the same table as the sync path.

What they do not do: they never hold a credential. ``serialize()`` keeps ids, numbers, the connection
id and absolute epoch deadlines (so a triggerer restart does not extend a timeout); the connection is
read inside ``run()`` without blocking the event loop. A trigger moved to another triggerer just starts
following again: the first ``tasks/get`` shows the current state and the result always comes from
``tasks/get``, so nothing is lost or counted twice. ``on_kill`` (a user marked the deferred task failed
or cleared it) cancels the remote task when ``cancel_on_kill`` is set; ``cleanup`` never does, because
it also runs when the trigger merely moves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.log import amask_secret
from airflow.triggers.base import BaseTrigger, TriggerEvent
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt

from airflow_agentvault.hooks.agentvault import (
    ConnectionConfigError,
    credential_safe_endpoint,
    settings_from_connection,
)
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentVaultClient
from airflow_agentvault.protocol.async_follow import AsyncTaskFollower
from airflow_agentvault.protocol.client import DEFAULT_READ_TIMEOUT
from airflow_agentvault.protocol.dialects import AUTO, aresolve, async_client_for_dialect
from airflow_agentvault.protocol.errors import redact_url
from airflow_agentvault.protocol.follow import stop_at
from airflow_agentvault.protocol.timing import InvalidTimingError, Timing
from airflow_agentvault.triggers.events import STATUS_DONE, STATUS_EXISTS, STATUS_NOT_FOUND, error_event

#: Largest final task a stream event carries; a bigger one is read again by the worker.
MAX_EVENT_TASK_BYTES = 64 * 1024

#: Seconds the agent gets to answer tasks/cancel when a user kills the deferred task.
CANCEL_READ_TIMEOUT = 30.0

log = logging.getLogger(__name__)

#: What a trigger turns into an "error" event; anything else is a bug and fails the trigger loudly.
_TRANSPORTED = (errors.AgentVaultError, ConnectionConfigError, InvalidTimingError)


async def async_client_for(conn_id: str, *, read_timeout: float = DEFAULT_READ_TIMEOUT) -> AsyncAgentVaultClient:
    """
    An async client for the ``agentvault`` connection, read without blocking the event loop.

    ``BaseHook.aget_connection`` and ``Connection.aextra_dejson`` (Airflow 3.3.2+) mask secrets
    asynchronously, which the triggerer's event loop needs; OAuth2 access tokens fetched here are
    registered the same way (``amask_secret``) as they arrive. The client is
    of the connection's dialect; ``auto`` reads the agent card here (once per trigger run) and logs the
    dialect it chose.
    """
    conn = await BaseHook.aget_connection(conn_id)
    extra = await conn.aextra_dejson()
    settings = settings_from_connection(conn_id, conn.host, conn.login, conn.password, extra or {},
                                        on_token=amask_secret, port=conn.port, schema=conn.schema)
    for secret in settings.auth.secrets():
        await amask_secret(secret)
    common = {"auth": settings.auth, "verify": settings.verify, "connect_timeout": settings.connect_timeout,
              "read_timeout": read_timeout}
    found = await aresolve(settings.dialect, settings.rpc_url, settings.card_url, **common)
    if found.card is not None:
        for warning in found.card.warnings:
            log.warning("Agent card at %s: %s", redact_url(found.card.url), warning)
    rpc_url, warning = credential_safe_endpoint(settings, found.rpc_url)
    if warning:
        log.warning("%s", warning)
    if settings.dialect == AUTO:
        log.info("Agent %s speaks the %s dialect (chosen from its card)", redact_url(rpc_url), found.dialect)
    return async_client_for_dialect(found.dialect, rpc_url, **common)


def _timing_dict(timing: Timing | dict[str, Any] | None) -> dict[str, Any]:
    """Plain numbers for serialization (validated, so a bad value fails in the operator, not later)."""
    return (timing if isinstance(timing, Timing) else Timing.parse(timing)).model_dump()


class _AgentTaskTrigger(BaseTrigger):
    """What both triggers share: the connection id, the agent task id, the timing and an injectable clock."""

    def __init__(self, conn_id: str, agent_task_id: str, timing: Timing | dict[str, Any] | None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.agent_task_id = agent_task_id
        self.timing = _timing_dict(timing)
        # Not serialized: tests replace them so that nothing waits in real time.
        self._clock = time.time
        self._sleep = asyncio.sleep

    def _classpath(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def _error(self, exc: BaseException) -> dict[str, Any]:
        self.log.warning("Stopped waiting for agent task %s: %s", self.agent_task_id, exc)
        return error_event(exc, task_id=self.agent_task_id)


class AgentVaultTaskExistsTrigger(_AgentTaskTrigger):
    """
    Wait in the triggerer until the agent's ``tasks/get`` sees a task: the deferrable task-exists check.

    Checks after the initial delay (counted from ``started_at``, only if no check was made yet), then
    at ``Timing.verify_interval_for(n)`` (growing, capped), until ``verify_attempts`` checks in all or
    ``deadline`` pass. "Task not found" and connection errors are retried; others end the wait.

    Events: ``{"status": "exists", "state", "attempts", "elapsed"}``,
    ``{"status": "not_found", "attempts", "elapsed", "last_answer"}`` or
    ``{"status": "error", "error_type", "detail", "task_id", ...}``.

    :param conn_id: the ``agentvault`` connection id.
    :param agent_task_id: the agent's task id.
    :param timing: :class:`Timing` or a dict of its fields.
    :param started_at: epoch time the verification began (for the initial delay and ``elapsed``).
    :param deadline: epoch time to give up; default ``started_at + timing.overall_timeout``.
    :param attempts_done: checks already made (by the operator before deferring).
    """

    def __init__(
        self,
        conn_id: str,
        agent_task_id: str,
        timing: Timing | dict[str, Any] | None,
        started_at: float,
        deadline: float | None = None,
        attempts_done: int = 0,
    ) -> None:
        super().__init__(conn_id, agent_task_id, timing)
        self.started_at = float(started_at)
        self.deadline = float(deadline) if deadline is not None else self.started_at + self.timing["overall_timeout"]
        self.attempts_done = int(attempts_done)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize identifiers, numbers and the absolute deadline, without credentials."""
        return self._classpath(), {
            "conn_id": self.conn_id,
            "agent_task_id": self.agent_task_id,
            "timing": self.timing,
            "started_at": self.started_at,
            "deadline": self.deadline,
            "attempts_done": self.attempts_done,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            timing = Timing.parse(self.timing)
            async with await async_client_for(self.conn_id) as client:
                event = await self._wait(client, timing)
        except _TRANSPORTED as exc:
            event = self._error(exc)
        yield TriggerEvent(event)

    async def _wait(self, client: AsyncAgentVaultClient, timing: Timing) -> dict[str, Any]:
        task_id, done_before = self.agent_task_id, self.attempts_done
        await self._initial_delay(timing)
        attempts = done_before

        async def check():
            nonlocal attempts
            attempts += 1
            return await client.get(task_id)

        def before_sleep(retry_state) -> None:
            self.log.info(
                "Check %d of %d: task %s not visible yet (%s); next check in %.2f s",
                attempts, timing.verify_attempts, task_id, retry_state.outcome.exception().detail,
                retry_state.next_action.sleep,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(timing.verify_attempts - done_before, 1)) | stop_at(self.deadline, self._clock),
            wait=lambda rs: min(timing.verify_interval_for(done_before + rs.attempt_number),
                                max(self.deadline - self._clock(), 0)),
            retry=retry_if_exception_type((errors.TaskNotFoundError, errors.AgentUnreachableError)),
            before_sleep=before_sleep,
            sleep=self._sleep,
        )
        try:
            task = await retrying(check)
        except RetryError as exc:
            last_answer = exc.last_attempt.exception().detail
            elapsed = self._clock() - self.started_at
            self.log.warning(
                "Task %s never became visible on agent %s: %d checks of tasks/get over %.1f s; last answer: %s",
                task_id, redact_url(client.rpc_url), attempts, elapsed, last_answer,
            )
            return {"status": STATUS_NOT_FOUND, "attempts": attempts, "elapsed": round(elapsed, 3),
                    "last_answer": last_answer}
        if task.state.ends_wait:
            self.log.info("Task %s is already %s; the stream step will take its result without streaming",
                          task_id, task.state.value)
        else:
            self.log.info("Task %s exists (check %d): state %s", task_id, attempts, task.state.value)
        return {"status": STATUS_EXISTS, "state": task.state.value, "attempts": attempts,
                "elapsed": round(self._clock() - self.started_at, 3)}

    async def _initial_delay(self, timing: Timing) -> None:
        """Wait out what is left of the initial delay; a restarted trigger does not wait it again in full."""
        if self.attempts_done or timing.initial_delay <= 0:
            return
        remaining = min(self.started_at + timing.initial_delay, self.deadline) - self._clock()
        if remaining > 0:
            self.log.info("Waiting %.1f s (initial delay) before the first check of task %s", remaining,
                          self.agent_task_id)
            await self._sleep(remaining)


class AgentVaultStreamTrigger(_AgentTaskTrigger):
    """
    Follow an agent task to its end in the triggerer: the deferrable stream step.

    Streams events (logging each one), retries the subscription within the bound, falls back to
    polling, and reads the final task from ``tasks/get``. It does not decide success: a FAILED task
    is a ``"done"`` event like a COMPLETED one, judged on the worker (``event_task`` and the operator's delivery).

    Events: ``{"status": "done", "task_id", "task": <task as on the wire>, "metadata":
    FollowOutcome.metadata(), "status_message"}`` or ``{"status": "error", "error_type", "detail",
    "task_id", ...}`` (e.g. ``WaitTimeoutError`` when the deadline passes, ``NotAuthorizedError``).

    :param conn_id: the ``agentvault`` connection id.
    :param agent_task_id: the agent's task id.
    :param timing: :class:`Timing` or a dict of its fields.
    :param deadline: epoch time to give up; default now + ``timing.overall_timeout``.
    :param cancel_on_kill: cancel the remote task when a user kills the deferred task (default True).
    """

    def __init__(
        self,
        conn_id: str,
        agent_task_id: str,
        timing: Timing | dict[str, Any] | None,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__(conn_id, agent_task_id, timing)
        self.deadline = float(deadline) if deadline is not None else time.time() + self.timing["overall_timeout"]
        self.cancel_on_kill = bool(cancel_on_kill)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize identifiers, numbers and the absolute deadline, without credentials."""
        return self._classpath(), {
            "conn_id": self.conn_id,
            "agent_task_id": self.agent_task_id,
            "timing": self.timing,
            "deadline": self.deadline,
            "cancel_on_kill": self.cancel_on_kill,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            timing = Timing.parse(self.timing)
            async with await async_client_for(self.conn_id) as client:
                follower = AsyncTaskFollower(client, timing, logger=self.log, clock=self._clock, sleep=self._sleep)
                outcome = await follower.follow(self.agent_task_id, deadline=self.deadline)
            event = {
                "status": STATUS_DONE,
                "task_id": self.agent_task_id,
                "metadata": outcome.metadata(),
                "status_message": outcome.status_message,
            }
            task = outcome.task.to_wire()
            if len(json.dumps(task, separators=(",", ":"))) <= MAX_EVENT_TASK_BYTES:
                event["task"] = task  # else the worker reads it with tasks/get: events live in the database
        except _TRANSPORTED as exc:
            event = self._error(exc)
        yield TriggerEvent(event)

    async def on_kill(self) -> None:
        """A user killed the deferred task: cancel the remote task too, if ``cancel_on_kill``."""
        if not self.cancel_on_kill:
            self.log.info("Leaving agent task %s running (cancel_on_kill is off)", self.agent_task_id)
            return
        try:
            async with await async_client_for(self.conn_id, read_timeout=CANCEL_READ_TIMEOUT) as client:
                answer = await client.cancel(self.agent_task_id)
            self.log.info("Asked the agent to cancel task %s: success=%s", self.agent_task_id, answer.success)
        except _TRANSPORTED as exc:
            self.log.warning("Could not cancel agent task %s: %s", self.agent_task_id, exc)

    async def cleanup(self) -> None:
        """Never cancels: cleanup also runs when the trigger moves to another triggerer or the triggerer stops."""
        await super().cleanup()
