"""
Waiting for an agent task, synchronously: until it exists, and until it ends (stream, then poll).

This is the seed orchestrator's recipe with every number taken from :class:`Timing`: subscribe over SSE
with bounded, backed-off retries on "Task not found" and connection errors; on a disconnect or when
the attempts are spent, poll ``tasks/get``; and in every case take the final task from ``tasks/get``,
so the result is assembled once and nothing is lost or duplicated across resubscribes and fallbacks.
Retries use tenacity; clock and sleep are injectable so tests never wait in real time.

The decisions and log lines live in :class:`FollowRules`, free of I/O, so the asynchronous follower
(:mod:`async_follow`, used by the triggers) tells the same story and reaches the same outcome. The
``deadline`` is in the units of the injected clock: the default monotonic clock here, or pass
``clock=time.time`` to give an absolute epoch deadline as the triggers do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryError, Retrying, retry_if_exception, retry_if_result, stop_after_attempt

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.client import AgentVaultClient
from airflow_agentvault.protocol.events import describe_event
from airflow_agentvault.protocol.models import Task, TaskEvent, TaskStatusEvent
from airflow_agentvault.protocol.timing import Timing

log = logging.getLogger(__name__)

#: How the result reached us; logged and kept in the result's metadata.
PATH_ALREADY_FINISHED = "already-finished"

LIKELY_CAUSES = (
    "the agent is slower to register tasks than the bound allows (raise verify_attempts or initial_delay), "
    "the agent restarted and lost its tasks, or the agent's router uses a different task store than its "
    "send handler (the seed's 'Task not found' bug)"
)
PATH_STREAM = "stream"
PATH_RESUBSCRIBE = "resubscribe"
PATH_POLLING = "polling"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, errors.AgentVaultError) and exc.retryable


def _resubscribable(exc: BaseException) -> bool:
    """Worth another subscription: retryable, but not a disconnect (that one goes straight to polling)."""
    return _retryable(exc) and not isinstance(exc, errors.StreamDisconnectedError)


@dataclass
class FollowOutcome:
    """What following a task produced: the final task (from tasks/get) and how we got it."""

    task: Task
    path: str
    waited_seconds: float
    events_seen: int = 0
    sse_attempts: int = 0
    status_message: str | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "delivered_by": self.path,
            "waited_seconds": round(self.waited_seconds, 3),
            "events_seen": self.events_seen,
            "sse_attempts": self.sse_attempts,
        }


@dataclass
class _StreamState:
    attempts: int = 0
    events: int = 0
    status_message: str | None = None


class FollowRules:
    """
    The follower's decisions and log lines, without I/O: shared by the sync and async followers.

    It expects the follower to provide ``timing``, ``logger``, ``on_event`` and ``clock``; the followers
    do the calls (blocking or awaited) and sleep, and ask these methods what to do and what to say.
    """

    timing: Timing
    logger: Any
    on_event: Callable[[TaskEvent], None] | None
    clock: Callable[[], float]

    def _deadline(self, started: float, deadline: float | None) -> float:
        return deadline if deadline is not None else started + self.timing.overall_timeout

    def _already_finished(self, task_id: str, current: Task | None, started: float) -> FollowOutcome | None:
        """The outcome if the first look shows a task that no longer needs waiting for."""
        if current is None or not current.state.ends_wait:
            return None
        self.logger.info("Task %s is already %s; taking its result without streaming", task_id, current.state.value)
        return FollowOutcome(current, PATH_ALREADY_FINISHED, self.clock() - started)

    def _peek_failed(self, task_id: str, exc: errors.AgentVaultError) -> None:
        if not exc.retryable:
            raise exc
        self.logger.info("Task %s not readable yet (%s); subscribing anyway", task_id, exc.detail)

    def _begin_attempt(self, task_id: str, deadline: float, state: _StreamState) -> float:
        """Count and announce a subscription attempt; return its read timeout (never past the deadline)."""
        state.attempts += 1
        remaining = max(deadline - self.clock(), 0.001)
        self.logger.info(
            "Subscribing to task %s events (attempt %d of %d)", task_id, state.attempts, self.timing.sse_attempts
        )
        return min(self.timing.read_timeout, remaining)

    def _record_event(self, task_id: str, event: TaskEvent, state: _StreamState) -> None:
        state.events += 1
        self.logger.info("[%s] %s", task_id, describe_event(event))
        if isinstance(event, TaskStatusEvent) and event.message_text:
            state.status_message = event.message_text
        if self.on_event:
            self.on_event(event)

    def _subscribe_retry_policy(self, deadline: float) -> dict[str, Any]:
        """Keyword arguments for tenacity's Retrying/AsyncRetrying around one subscription attempt."""

        def before_sleep(retry_state) -> None:
            exc = retry_state.outcome.exception()
            self.logger.warning(
                "Subscription attempt %d failed: %s; retrying in %.2f s",
                retry_state.attempt_number, exc.detail, retry_state.next_action.sleep,
            )

        return {
            "stop": stop_after_attempt(self.timing.sse_attempts) | stop_at(deadline, self.clock),
            "wait": lambda rs: min(self.timing.sse_delay_for(rs.attempt_number), max(deadline - self.clock(), 0)),
            "retry": retry_if_exception(_resubscribable),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def _subscription_given_up(self, exc: errors.AgentVaultError, state: _StreamState) -> None:
        """After the retries: raise what cannot be helped, else say why we poll instead."""
        if isinstance(exc, errors.StreamDisconnectedError):
            self.logger.warning("%s; falling back to polling every %.2f s", exc.detail, self.timing.poll_interval)
            return
        if not exc.retryable:
            raise exc
        self.logger.warning(
            "Subscription failed %d times (last: %s); falling back to polling every %.2f s",
            state.attempts, exc.detail, self.timing.poll_interval,
        )

    @staticmethod
    def _stream_path(state: _StreamState) -> str:
        return PATH_STREAM if state.attempts == 1 else PATH_RESUBSCRIBE

    def _poll_failed(self, polls: int, task_id: str, exc: errors.AgentVaultError) -> None:
        if not exc.retryable:
            raise exc
        self.logger.info("Poll %d of task %s: %s", polls, task_id, exc.detail)

    def _polled(self, polls: int, task_id: str, task: Task) -> Task:
        self.logger.info("Poll %d: task %s is %s", polls, task_id, task.state.value)
        return task

    def _poll_retry_policy(self, deadline: float) -> dict[str, Any]:
        """Keyword arguments for tenacity: poll until the task ends the wait or the deadline passes."""
        return {
            "stop": stop_at(deadline, self.clock),
            "wait": lambda rs: min(self.timing.poll_interval, max(deadline - self.clock(), 0)),
            "retry": retry_if_result(lambda t: t is None or not t.state.ends_wait),
        }

    def _poll_timed_out(self, task_id: str, polls: int, agent_url: str) -> errors.WaitTimeoutError:
        return errors.WaitTimeoutError(
            f"task did not finish within the overall timeout of {self.timing.overall_timeout:g} s "
            f"({polls} polls every {self.timing.poll_interval:g} s)",
            agent_url=agent_url,
            method="tasks/get",
            task_id=task_id,
        )

    def _final_lags(self, task: Task) -> bool:
        """True (and said) when tasks/get has not caught up with the stream's final state yet."""
        if task.state.ends_wait:
            return False
        self.logger.info("Stream ended but tasks/get still says %s; polling", task.state.value)
        return True

    def _finished(self, task_id: str, task: Task, path: str, started: float, state: _StreamState) -> FollowOutcome:
        waited = self.clock() - started
        self.logger.info(
            "Task %s ended %s; result delivered by %s after %.2f s (%d events, %d subscription attempts)",
            task_id, task.state.value, path, waited, state.events, state.attempts,
        )
        return FollowOutcome(task, path, waited, state.events, state.attempts, state.status_message)


@dataclass
class TaskFollower(FollowRules):
    """
    Follows one task to its end with the given timing.

    :param client: the agent client.
    :param timing: the validated timing.
    :param logger: where the story goes (the Airflow task log, in the operators).
    :param on_event: called with every streamed event, after it is logged.
    :param clock: the clock deadlines are measured on (monotonic by default; ``time.time`` for epoch deadlines).
    :param sleep: how to wait between retries and polls.
    """

    client: AgentVaultClient
    timing: Timing
    logger: Any = field(default_factory=lambda: log)
    on_event: Callable[[TaskEvent], None] | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    # -- existence -----------------------------------------------------------------------------

    def check_exists(self, task_id: str) -> Task | None:
        """One existence check: the task, or None if not (yet) visible; other errors propagate."""
        try:
            return self.client.get(task_id)
        except errors.TaskNotFoundError:
            return None

    # -- following ----------------------------------------------------------------------------

    def follow(self, task_id: str, *, deadline: float | None = None, seen: Task | None = None) -> FollowOutcome:
        """Stream the task to its end (falling back to polling) and return the final task.

        ``seen``: the task as the caller has just read it, which replaces the first look.
        """
        started = self.clock()
        deadline = self._deadline(started, deadline)
        state = _StreamState()

        current = seen if seen is not None else self._peek(task_id)
        finished = self._already_finished(task_id, current, started)
        if finished is not None:
            return finished

        path = self._stream(task_id, deadline, state)
        if path is None:
            task = self._poll(task_id, deadline)
            path = PATH_POLLING
        else:
            task = self._final_task(task_id, deadline)
        return self._finished(task_id, task, path, started, state)

    def wait_until_visible(self, task_id: str, *, deadline: float | None = None) -> Task:
        """The sensor's recipe in-process (compact stages): initial delay, then bounded, growing checks."""
        started = self.clock()
        deadline = self._deadline(started, deadline)
        if self.timing.initial_delay > 0:
            self.logger.info("Waiting %.1f s (initial delay) before the first check of task %s",
                             self.timing.initial_delay, task_id)
            self.sleep(min(self.timing.initial_delay, max(deadline - self.clock(), 0)))
        attempts, last_answer = 0, "no answer yet"

        def check() -> Task | None:
            nonlocal attempts, last_answer
            attempts += 1
            try:
                task = self.client.get(task_id)
            except errors.AgentVaultError as exc:
                if not exc.retryable:
                    raise
                last_answer = exc.detail
                self.logger.info("Check %d of %d: task %s not visible yet (%s)", attempts,
                                 self.timing.verify_attempts, task_id, exc.detail)
                return None
            self.logger.info("Task %s exists (check %d): state %s", task_id, attempts, task.state.value)
            return task

        try:
            return Retrying(
                stop=stop_after_attempt(self.timing.verify_attempts) | stop_at(deadline, self.clock),
                wait=lambda rs: min(self.timing.verify_interval_for(rs.attempt_number), max(deadline - self.clock(), 0)),
                retry=retry_if_result(lambda task: task is None),
                sleep=self.sleep,
            )(check)
        except RetryError:
            raise errors.WaitTimeoutError(
                f"task never became visible: {attempts} checks of tasks/get over {self.clock() - started:.1f} s; "
                f"last answer: {last_answer}. Likely causes: {LIKELY_CAUSES}",
                agent_url=self.client.rpc_url, method="tasks/get", task_id=task_id,
            ) from None

    def finished(self, task_id: str) -> FollowOutcome | None:
        """One look: the outcome if the task already ended the wait, else None (also if not visible yet)."""
        return self._already_finished(task_id, self._peek(task_id), self.clock())

    def _peek(self, task_id: str) -> Task | None:
        try:
            return self.client.get(task_id)
        except errors.AgentVaultError as exc:
            self._peek_failed(task_id, exc)
            return None

    def _stream(self, task_id: str, deadline: float, state: _StreamState) -> str | None:
        """Try the subscription with bounded retries; the path on success, None to fall back to polling."""

        def attempt() -> None:
            read_timeout = self._begin_attempt(task_id, deadline, state)
            for event in self.client.subscribe(task_id, read_timeout=read_timeout):
                self._record_event(task_id, event, state)

        try:
            Retrying(sleep=self.sleep, **self._subscribe_retry_policy(deadline))(attempt)
        except errors.AgentVaultError as exc:
            self._subscription_given_up(exc, state)
            return None
        return self._stream_path(state)

    def _poll(self, task_id: str, deadline: float) -> Task:
        """Poll tasks/get until the task ends the wait, or the overall deadline passes."""
        polls = 0

        def poll() -> Task | None:
            nonlocal polls
            polls += 1
            try:
                task = self.client.get(task_id)
            except errors.AgentVaultError as exc:
                self._poll_failed(polls, task_id, exc)
                return None
            return self._polled(polls, task_id, task)

        try:
            return Retrying(sleep=self.sleep, **self._poll_retry_policy(deadline))(poll)
        except RetryError:
            raise self._poll_timed_out(task_id, polls, self.client.rpc_url) from None

    def _final_task(self, task_id: str, deadline: float) -> Task:
        """The stream said the task ended: read the authoritative task (poll if it lags the stream)."""
        task = self.client.get(task_id)
        if self._final_lags(task):
            return self._poll(task_id, deadline)
        return task


def stop_at(deadline: float, clock: Callable[[], float]):
    """A tenacity stop condition on an absolute deadline of our own clock."""

    def stop(retry_state) -> bool:
        return clock() >= deadline

    return stop
