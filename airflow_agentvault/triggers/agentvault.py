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
import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_agentvault.hooks.agentvault import AgentVaultHook, ConnectionConfigError
from airflow_agentvault.operators.stage_timing import StageTiming
from airflow_agentvault.protocol import errors, models, receiver, tracing
from airflow_agentvault.protocol.async_client import AsyncAgentClient, ssl_context
from airflow_agentvault.protocol.follow import Follower, FollowOutcome
from airflow_agentvault.protocol.timing import Timing
from airflow_agentvault.stage_tracing import traced_trigger
from airflow_agentvault.triggers.events import STATUS_DONE, STATUS_EXISTS, STATUS_NOT_FOUND, error_event

# What a trigger run needs is loaded with this module (once per triggerer), not on each first use inside
# the event loop: the wire models' schemas, the default TLS context (loading the CA store takes tens of
# milliseconds) and httpx's connection pool (httpcore, which httpx imports on first use).
models.build_all()
ssl_context(True)
httpx.AsyncHTTPTransport()
# Then what is loaded so far (Airflow and this provider: some 170,000 objects that live as long as the
# process) leaves the cyclic collector's view, as in Airflow's forked workers. A full collection stops the
# event loop while it walks every tracked object (0.1 to 0.2 s for these alone), and a thousand streams
# cause one every few seconds, while every stream's events wait.
gc.freeze()

#: Largest final task a stream event carries; a bigger one is read again by the worker.
MAX_EVENT_TASK_BYTES = 64 * 1024

#: Seconds the agent gets to answer tasks/cancel when a user kills the deferred task.
CANCEL_READ_TIMEOUT = 30.0

log = logging.getLogger(__name__)

#: What a trigger turns into an "error" event; anything else is a bug and fails the trigger loudly.
TRANSPORTED = (errors.AgentVaultError, ConnectionConfigError)


def done_event(agent_task_id: str, outcome: FollowOutcome) -> dict[str, Any]:
    """A ``"done"`` event: the final task travels in it unless too big (events live in the database)."""
    event = {"status": STATUS_DONE, "task_id": agent_task_id, "metadata": outcome.metadata(),
             "status_message": outcome.status_message}
    task = outcome.task.to_wire()
    if len(json.dumps(task, separators=(",", ":"))) <= MAX_EVENT_TASK_BYTES:
        event["task"] = task  # else the worker reads it with tasks/get
    return event


async def still_deferred(ti: Any) -> bool:
    """
    Whether ``ti`` is still DEFERRED, read through the triggerer's comms (``GetTaskStates``).

    The triggerer calls ``on_kill`` when a user moved the task out of DEFERRED (mark failed, clear), and
    also when it lost the trigger to another triggerer because its own heartbeat lagged: then the task is
    still deferred and the other triggerer follows the same remote task, which must not be canceled.
    Unknown (no task instance, no answer): False, so the user's kill still cancels.
    """
    if ti is None or not hasattr(ti, "run_id"):
        return False
    try:
        from airflow.sdk.execution_time.comms import GetTaskStates
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

        answer = await SUPERVISOR_COMMS.asend(GetTaskStates(dag_id=ti.dag_id, task_ids=[ti.task_id],
                                                            run_ids=[ti.run_id], map_index=ti.map_index))
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        return answer.task_states.get(ti.run_id, {}).get(key) == "deferred"
    except Exception:  # noqa: BLE001 - no answer is no proof that the trigger moved
        return False


async def cancel_agent_task(conn_id: str, agent_task_id: str | None, logger: Any, *, cancel: bool = True,
                            ti: Any = None) -> None:
    """``on_kill``: cancel the remote task (if ``cancel``) unless the trigger only moved; never raises."""
    if not agent_task_id:
        return
    if not cancel:
        logger.info("Leaving agent task %s running (cancel_on_kill is off)", agent_task_id)
        return
    if await still_deferred(ti):
        logger.info("Leaving agent task %s running: the task is still deferred, so this trigger moved to another "
                    "triggerer, which follows it", agent_task_id)
        return
    try:
        async with await AgentVaultHook(conn_id, read_timeout=CANCEL_READ_TIMEOUT).aget_client() as client:
            answer = await client.cancel(agent_task_id)
        logger.info("Asked the agent to cancel task %s: success=%s", agent_task_id, answer.success)
    except TRANSPORTED as exc:
        logger.warning("Could not cancel agent task %s: %s", agent_task_id, exc)


class _AgentTaskTrigger(BaseTrigger):
    """
    What both triggers share: the connection id, the agent task id, the run's timing and an injectable clock.

    ``timing``, ``started_at`` and ``deadline`` are a :class:`StageTiming`'s: the operator's validated
    timing, or its serialized knobs when the triggerer restores the trigger (validated once there).
    """

    def __init__(self, conn_id: str, agent_task_id: str, timing: Timing | dict[str, Any] | None,
                 started_at: float, deadline: float) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.agent_task_id = agent_task_id
        self.run_timing = StageTiming.carried(timing, started_at, deadline)
        # Not serialized: tests replace them so that nothing waits in real time.
        self._clock = time.time
        self._sleep = asyncio.sleep

    async def _client(self, **hook_args: Any) -> AsyncAgentClient:
        return await AgentVaultHook(self.conn_id, **hook_args).aget_client()

    @property
    def deadline(self) -> float:
        return self.run_timing.deadline

    def _kwargs(self) -> dict[str, Any]:
        """What both serialize: identifiers and plain numbers, no credential."""
        return {"conn_id": self.conn_id, "agent_task_id": self.agent_task_id, **self.run_timing.trigger_kwargs()}

    def _follower(self, client: AsyncAgentClient) -> Follower:
        tracing.identify(client.agent)
        return Follower(client.agent, self.run_timing.timing, logger=self.log, clock=self._clock)

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
    :param timing, started_at, deadline: the sensor's :class:`StageTiming` (``started_at``: when the wait
        began, for the initial delay and ``elapsed``).
    :param attempts_done: checks already made (by the operator before deferring).
    """

    def __init__(self, conn_id: str, agent_task_id: str, timing: Timing | dict[str, Any] | None,
                 started_at: float, deadline: float, attempts_done: int = 0) -> None:
        super().__init__(conn_id, agent_task_id, timing, started_at, deadline)
        self.attempts_done = int(attempts_done)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize identifiers, numbers and the absolute deadline, without credentials."""
        return self._classpath(), {**self._kwargs(), "attempts_done": self.attempts_done}

    @traced_trigger("wait_until_visible.trigger")
    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = self.run_timing.started_at
        try:
            async with await self._client() as client:
                follower = self._follower(client)
                wait = follower.visibility_wait(self.agent_task_id, started=started, deadline=self.deadline,
                                                attempts=self.attempts_done)
                try:
                    task = await client.run(follower.wait_until_visible(wait), sleep=self._sleep)
                except errors.WaitTimeoutError as exc:
                    self.log.warning("%s", exc)
                    event = {"status": STATUS_NOT_FOUND, "attempts": wait.attempts,
                             "elapsed": round(self._clock() - started, 3), "last_answer": wait.last_answer}
                else:
                    event = {"status": STATUS_EXISTS, "state": task.state.value, "attempts": wait.attempts,
                             "elapsed": round(self._clock() - started, 3)}
        except TRANSPORTED as exc:
            event = self._error(exc)
        yield TriggerEvent(event)


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
    :param timing, started_at, deadline: the operator's :class:`StageTiming`.
    :param cancel_on_kill: cancel the remote task when a user kills the deferred task (default True).
    :param push: ``auto`` / ``on`` / ``off``: wait by push notification instead of a stream (None: the
        connection's extra ``push``). A push wait registers with this triggerer's receiver; a trigger that
        moves registers again with its new triggerer's receiver and reads the task first.
    :param known_state: the state the worker saw the task in before deferring (None: not seen): an agent
        that answers "not found" from then on lost the task (``TaskLostError`` after ``lost_grace``).
    """

    def __init__(self, conn_id: str, agent_task_id: str, timing: Timing | dict[str, Any] | None,
                 started_at: float, deadline: float, cancel_on_kill: bool = True, push: str | None = None,
                 known_state: str | None = None) -> None:
        super().__init__(conn_id, agent_task_id, timing, started_at, deadline)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.push = push
        self.known_state = known_state

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize identifiers, numbers and the absolute deadline, without credentials (nor a push token)."""
        return self._classpath(), {**self._kwargs(), "cancel_on_kill": self.cancel_on_kill, "push": self.push,
                                   "known_state": self.known_state}

    @traced_trigger("stream.trigger")
    async def run(self) -> AsyncIterator[TriggerEvent]:
        slot = await receiver.start_slot()  # from the connection read on: a thousand triggers begin a few at a time
        try:
            async with await self._client() as client:
                follower = self._follower(client)
                outcome = await receiver.follow(client, follower, self.agent_task_id, deadline=self.deadline,
                                                known_state=self.known_state, push_mode=self.push, sleep=self._sleep,
                                                slot=slot)
            event = done_event(self.agent_task_id, outcome)
        except TRANSPORTED as exc:
            event = self._error(exc)
        finally:
            slot.release()
        yield TriggerEvent(event)

    async def on_kill(self) -> None:
        """A user killed the deferred task: cancel the remote task too, if ``cancel_on_kill``."""
        await cancel_agent_task(self.conn_id, self.agent_task_id, self.log, cancel=self.cancel_on_kill,
                                ti=self.task_instance)

    async def cleanup(self) -> None:
        """Never cancels: cleanup also runs when the trigger moves to another triggerer or the triggerer stops."""
        await super().cleanup()
