"""
Waiting for an agent task until it exists, and until it ends (long: one state machine, all its decisions).

Stream, then poll; written once.

:class:`Follower` is the state machine every waiting path runs (the stream operator, the compact stage,
the triggers, through the blocking or the asyncio runner): subscribe over SSE with bounded, backed-off
retries on "Task not found" and connection errors; on a disconnect or when the attempts are spent,
poll ``tasks/get``; and in every case take the final task from ``tasks/get``, so the result is assembled
once and nothing is lost or duplicated across resubscribes and fallbacks. A wait by push
(:meth:`Follower.follow_by_push`) returns a :class:`PushWait` between reads instead of staying suspended:
the caller parks it until a notification (``receiver.wait_by_push``), and each read runs from it
(:meth:`Follower.read_by_push`), so a stage waiting for hours keeps no routine. :class:`VisibilityWait` holds
the existence wait's decisions (count, log, next interval, give up), shared by the sensor's pokes, its
trigger and the compact stage. Every number comes from :class:`Timing`; ``Retry-After`` stretches a wait.

Each decision is logged and added to the current span (:mod:`tracing`) where it is made.

Deadlines are in the units of the injected clock: monotonic by default, or ``time.time`` for the
absolute epoch deadlines the triggers carry across triggerer restarts.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_agentvault.protocol import errors, operations, push, tracing
from airflow_agentvault.protocol.describe import LogLines, clip
from airflow_agentvault.protocol.exchange import Notify, Program, Sleep
from airflow_agentvault.protocol.models import Task, TaskEvent, TaskStatusEvent, ends_wait
from airflow_agentvault.protocol.operations import Agent, StreamWatch
from airflow_agentvault.protocol.timing import Timing

log = logging.getLogger(__name__)

#: How the result reached us; logged and kept in the result's metadata.
PATH_ALREADY_FINISHED = "already-finished"
PATH_STREAM = "stream"
PATH_RESUBSCRIBE = "resubscribe"
PATH_POLLING = "polling"
PATH_PUSH = "push"

LIKELY_CAUSES = (
    "the agent is slower to register tasks than the bound allows (raise verify_attempts or initial_delay), "
    "the agent restarted and lost its tasks, or the agent's router uses a different task store than its "
    "send handler"
)


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
class VisibilityWait:
    """
    The existence wait's bound and story: checks counted against ``verify_attempts`` and a deadline.

    Pure: the caller makes each ``get`` and reports what came back (:meth:`seen` / :meth:`missed`).
    ``attempts`` and ``started`` may come from an earlier run (a sensor reschedule, a trigger that
    moved), so the bound holds across them.
    """

    task_id: str
    timing: Timing
    agent_url: str
    started: float
    deadline: float
    attempts: int = 0
    last_answer: str = "no answer yet"
    get_name: str = "tasks/get"
    next_delay: float | None = None  # the wait before the next check: initial delay, interval or ``Retry-After``
    paused: bool = False  # the initial delay was taken (a clock may wake a hair early)

    def initial_pause(self, now: float, logger: Any) -> float | None:
        """What is left of the initial delay before the first check (None once a check or the pause was made)."""
        if self.attempts > 0 or self.paused or self.timing.initial_delay <= 0:
            return None
        remaining = min(self.started + self.timing.initial_delay, self.deadline) - now
        if remaining <= 0:
            return None
        logger.info("Waiting %.1f s (initial delay) before the first check of task %s", remaining, self.task_id)
        self.next_delay, self.paused = remaining, True
        return remaining

    def seen(self, task: Task, logger: Any) -> Task:
        tracing.event(tracing.VISIBLE, **{"agentvault.checks": self.attempts, "agentvault.task.state": task.state.value})
        if task.state.ends_wait:
            logger.info("Task %s is already %s; its result is taken without streaming", self.task_id,
                        task.state.value)
        else:
            logger.info("Task %s exists (check %d): state %s", self.task_id, self.attempts, task.state.value)
        return task

    def missed(self, exc: errors.AgentVaultError, logger: Any, now: float) -> float | None:
        """A check that did not find the task: the delay before the next, or None once the bound is spent."""
        if not exc.retryable:
            raise exc
        self.last_answer = exc.detail
        delay: float | None = None
        if self.attempts < self.timing.verify_attempts and now < self.deadline:
            delay = max(self.timing.verify_interval_for(self.attempts), getattr(exc, "retry_after", None) or 0.0)
            delay = min(delay, max(self.deadline - now, 0.0))
        logger.info("Check %d of %d: task %s not visible yet (%s)%s", self.attempts, self.timing.verify_attempts,
                    self.task_id, exc.detail, f"; next check in {delay:.2f} s" if delay is not None else "")
        tracing.failure(tracing.VISIBILITY_CHECK, exc, **{"agentvault.check": self.attempts,
                                                           "agentvault.next_check_in": delay})
        self.next_delay = delay
        return delay

    def gave_up(self, now: float) -> errors.WaitTimeoutError:
        t = self.timing
        return errors.WaitTimeoutError(
            f"task never became visible: {self.attempts} checks of {self.get_name} over {now - self.started:.1f} s "
            f"(initial delay {t.initial_delay:g} s, interval {t.verify_interval:g} s growing x{t.verify_backoff:g} "
            f"up to {t.verify_max_interval:g} s); last answer: {self.last_answer}. Likely causes: {LIKELY_CAUSES}",
            agent_url=self.agent_url, method=self.get_name, task_id=self.task_id,
        )


def _logs_info(logger: Any) -> bool:
    """Whether ``logger`` writes INFO lines (an object without ``isEnabledFor`` is taken to)."""
    enabled = getattr(logger, "isEnabledFor", None)
    return True if enabled is None else bool(enabled(logging.INFO))


#: Consecutive unreadable answers to ``get`` (damaged in transit) tolerated before it is a protocol error.
UNREADABLE_GETS = 3


@dataclass(slots=True)
class _Progress:
    """What one follow has seen so far: counts for the metadata, and what timeouts and losses report."""

    started: float
    attempts: int = 0
    events: int = 0
    status_message: str | None = None
    state: str | None = None  # the task's last known state
    seen_at: float | None = None  # when the agent last showed the task
    missing_since: float | None = None  # first "Task not found" after it was seen
    unreadable: int = 0

    def saw(self, state: str, now: float) -> None:
        self.state, self.seen_at, self.missing_since, self.unreadable = state, now, None, 0


@dataclass(slots=True)
class PushWait:
    """
    A wait by push between two reads: all a parked stage keeps of its follow (the follower's routines have
    returned). ``next_read``: seconds until the safety read, unless the plan's doorbell rings first.
    """

    task_id: str
    deadline: float
    plan: push.PushPlan
    progress: _Progress
    reads: int = 0
    next_read: float = 0.0


@dataclass(slots=True)
class Follower:
    """
    Follows one task with the given timing, as core routines (run them with a client's runner).

    :param agent: the agent and dialect.
    :param timing: the validated timing.
    :param logger: where the story goes (the Airflow task log, or the trigger's log).
    :param on_event: called with every streamed event, after it is logged.
    :param clock: the clock deadlines are measured on (monotonic by default; ``time.time`` for epoch deadlines).
    """

    agent: Agent
    timing: Timing
    logger: Any = field(default_factory=lambda: log)
    on_event: Callable[[TaskEvent], None] | None = None
    clock: Callable[[], float] = time.monotonic

    # -- existence ------------------------------------------------------------------------------------

    def visibility_wait(self, task_id: str, *, started: float | None = None, deadline: float | None = None,
                        attempts: int = 0) -> VisibilityWait:
        started = self.clock() if started is None else started
        deadline = self.timing.deadline_after(started) if deadline is None else deadline
        return VisibilityWait(task_id, self.timing, self.agent.endpoint, started, deadline, attempts,
                              get_name=self.get_name(task_id))

    def check_visible(self, wait: VisibilityWait) -> Program[Task | None]:
        """
        One step of the existence wait: the task, or None and ``wait.next_delay`` before the next step.

        The first step may be the initial delay (no request); WaitTimeoutError once the bound is spent.
        """
        if wait.initial_pause(self.clock(), self.logger) is not None:
            return None
        wait.attempts += 1
        try:
            task = yield from operations.get(self.agent, wait.task_id)
        except errors.AgentVaultError as exc:
            if wait.missed(exc, self.logger, self.clock()) is None:
                raise wait.gave_up(self.clock()) from None
            return None
        return wait.seen(task, self.logger)

    def wait_until_visible(self, wait: VisibilityWait) -> Program[Task]:
        """Step until the task is visible, sleeping what each step asks (initial delay, growing interval)."""
        while True:
            task = yield from self.check_visible(wait)
            if task is not None:
                return task
            yield Sleep(wait.next_delay or 0.0)

    # -- following -----------------------------------------------------------------------------------

    def follow(self, task_id: str, *, deadline: float | None = None, seen: Task | None = None,
               known_state: str | None = None) -> Program[FollowOutcome]:
        """Stream the task to its end (falling back to polling) and return the final task.

        ``seen``: the task as the caller has just read it, which replaces the first look.
        ``known_state``: the state an earlier step saw the task in (a worker, before it deferred): the agent
        has shown the task, so its answering "not found" from then on is a loss after ``lost_grace``, even
        when this follow's own first look fails.
        """
        finished, state, deadline = yield from self._begin(task_id, deadline, seen, known_state)
        if finished is not None:
            return finished
        seen = None  # a wait that lasts hours keeps no copy of the task
        return (yield from self._stream_or_poll(task_id, deadline, state))

    def follow_by_push(self, task_id: str, plan: push.PushPlan, *, deadline: float | None = None,
                       seen: Task | None = None, known_state: str | None = None,
                       streaming: Callable[[Any], Any] | None = None) -> Program[FollowOutcome | PushWait]:
        """
        :meth:`follow`, waiting by push where the agent takes the push config: then, unless the first read
        ends the wait, a :class:`PushWait` to park on until its doorbell rings or ``next_read`` seconds pass
        (then :meth:`read_by_push`). Nothing of this routine stays suspended while the wait is parked.
        ``streaming`` is told (with None) when the agent refuses the config and the wait streams instead.
        """
        finished, state, deadline = yield from self._begin(task_id, deadline, seen, known_state)
        if finished is not None:
            return finished
        seen = None  # nor does a stream this falls back to
        if not (yield from push.register(self.agent, task_id, plan, self.logger)):
            if streaming is not None:
                yield Notify(streaming, None)
            return (yield from self._stream_or_poll(task_id, deadline, state))
        wait = PushWait(task_id, deadline, plan, state)
        outcome = yield from self.read_by_push(wait)
        return wait if outcome is None else outcome

    def _begin(self, task_id: str, deadline: float | None, seen: Task | None, known_state: str | None
               ) -> Program[tuple[FollowOutcome | None, _Progress, float]]:
        """The first look: the outcome if the task already ended the wait, the follow's progress and deadline."""
        state = _Progress(self.clock())
        deadline = deadline if deadline is not None else self.timing.deadline_after(state.started)
        finished = yield from self._first_look(task_id, seen, known_state, state)
        return finished, state, deadline

    def _stream_or_poll(self, task_id: str, deadline: float, state: _Progress) -> Program[FollowOutcome]:
        path = yield from self._stream(task_id, deadline, state)
        if path is None:
            task = yield from self._poll(task_id, deadline, state)
            path = PATH_POLLING
        else:
            task = yield from self._final_task(task_id, deadline, state)
        return self._finished(task_id, task, path, state.started, state)

    def _first_look(self, task_id: str, seen: Task | None, known_state: str | None, state: _Progress
                    ) -> Program[FollowOutcome | None]:
        """The outcome if the task already ended the wait; else what the look showed goes into ``state``."""
        current = seen if seen is not None else (yield from self.look(task_id))
        finished = self.outcome_if_finished(task_id, current, state.started)
        if finished is not None:
            return finished
        if current is None:
            if known_state is not None:
                state.saw(known_state, self.clock())
            return None
        state.saw(current.state.value, self.clock())
        said = current.answer_text()
        if said:  # so the log never starts mid-sentence
            self.logger.info("[%s] %s so far; the agent has said: %s", task_id, current.state.value, clip(said))
        return None

    def finished(self, task_id: str) -> Program[FollowOutcome | None]:
        """One look: the outcome if the task already ended the wait, else None (also if not visible yet)."""
        current = yield from self.look(task_id)
        return self.outcome_if_finished(task_id, current)

    def look(self, task_id: str) -> Program[Task | None]:
        """The task as the agent shows it now, or None if it cannot be read yet (a retryable error)."""
        try:
            task = yield from operations.get(self.agent, task_id)
        except errors.AgentVaultError as exc:
            if not exc.retryable:
                raise
            self.logger.info("Task %s not readable yet (%s); subscribing anyway", task_id, exc.detail)
            return None
        return task

    def outcome_if_finished(self, task_id: str, current: Task | None, started: float | None = None
                            ) -> FollowOutcome | None:
        """The outcome of a task just read, if it no longer needs waiting for."""
        if current is None or not current.state.ends_wait:
            return None
        self.logger.info("Task %s is already %s; taking its result without streaming", task_id, current.state.value)
        return delivered(FollowOutcome(current, PATH_ALREADY_FINISHED,
                                       0.0 if started is None else self.clock() - started))

    def _stream(self, task_id: str, deadline: float, state: _Progress) -> Program[str | None]:
        """Subscribe with bounded retries; the path on success, None to fall back to polling."""
        lines = LogLines(lambda line: self.logger.info("[%s] %s", task_id, line), enabled=_logs_info(self.logger))
        watch = StreamWatch(functools.partial(self._record_event, task_id, state, deadline, lines),
                            functools.partial(self._skipped, task_id),
                            functools.partial(self._check_deadline, task_id, state, deadline))
        while True:
            state.attempts += 1
            self.logger.info("Subscribing to task %s events (attempt %d of %d)", task_id, state.attempts,
                             self.timing.sse_attempts)
            tracing.event(tracing.SUBSCRIBE, **{"agentvault.attempt": state.attempts})
            read_timeout = min(self.timing.read_timeout, max(deadline - self.clock(), 0.001))
            try:
                yield from operations.subscribe(self.agent, task_id, read_timeout, watch)
            except errors.AgentVaultError as exc:
                lines.flush()
                tracing.failure(tracing.SUBSCRIPTION_END, exc, **{"agentvault.events": state.events})
                if not self._resubscribable(exc) or state.attempts >= self.timing.sse_attempts \
                        or self.clock() >= deadline:
                    self._subscription_given_up(exc, state)
                    return None
                delay = self._delay(self.timing.sse_delay_for(state.attempts), exc, deadline)
                self.logger.warning("Subscription attempt %d failed: %s; retrying in %.2f s", state.attempts,
                                    exc.detail, delay)
                yield Sleep(delay)
                continue
            lines.flush()
            tracing.event(tracing.SUBSCRIPTION_END, **{"agentvault.reason": "terminal state",
                                                       "agentvault.events": state.events})
            return PATH_STREAM if state.attempts == 1 else PATH_RESUBSCRIBE

    def _skipped(self, task_id: str, note: str) -> None:
        self.logger.info("[%s] %s", task_id, note)
        tracing.event(tracing.EVENT_SKIPPED, **{"agentvault.note": note})

    @staticmethod
    def _resubscribable(exc: errors.AgentVaultError) -> bool:
        """Worth another subscription: retryable, unless the agent has no stream for the task or the stream
        holds an event above the size limit (it would come again)."""
        return exc.retryable and not isinstance(exc, errors.StreamUnavailableError | errors.EventTooLargeError)

    def _check_deadline(self, task_id: str, state: _Progress, deadline: float) -> None:
        """A read of the stream, events or not: past the deadline the wait ends (a trickle of bytes too)."""
        if self.clock() >= deadline:
            raise self._timed_out(task_id, state, f"still streaming after {state.events} events")

    def _record_event(self, task_id: str, state: _Progress, deadline: float, lines: LogLines,
                      event: TaskEvent) -> None:
        state.events += 1
        now = self.clock()
        if lines.enabled:
            lines.add(event, now)
        if type(event) is TaskStatusEvent:  # not isinstance: see models.ends_wait
            state.saw(event.state.value, now)
            if event.message_text:
                state.status_message = event.message_text
        if self.on_event:
            self.on_event(event)
        if now >= deadline and not ends_wait(event):
            raise self._timed_out(task_id, state, f"still streaming after {state.events} events")

    def _subscription_given_up(self, exc: errors.AgentVaultError, state: _Progress) -> None:
        """After the retries: raise what cannot be helped, else say why we poll instead."""
        if not exc.retryable:
            raise exc
        tracing.failure(tracing.FALLBACK_POLLING, exc, **{"agentvault.subscription_attempts": state.attempts})
        if isinstance(exc, errors.StreamUnavailableError | errors.EventTooLargeError):
            self.logger.warning("%s; falling back to polling every %.2f s", exc.detail, self.timing.poll_interval)
            return
        self.logger.warning(
            "Subscription failed %d times (last: %s); falling back to polling every %.2f s",
            state.attempts, exc.detail, self.timing.poll_interval,
        )

    def read_by_push(self, wait: PushWait) -> Program[FollowOutcome | None]:
        """
        One read of a task waited for by push: the outcome once the task ends the wait, else None with
        ``wait.next_read`` set (the safety interval, or the poll interval after a failed read).

        The task was registered before the first read, so no change is missed. The push config is removed
        when the wait ends while the task goes on (a question, an error, the deadline); a task that ended
        has no updates left to announce, so its config is left with it: one request fewer between the
        notification and the stage resuming.
        """
        wait.reads += 1
        try:
            ended, failure = yield from self._read_once(wait.task_id, wait.reads, wait.progress)
            if ended is None and self.clock() >= wait.deadline:
                raise self._timed_out(wait.task_id, wait.progress, f"{wait.reads} reads by push, at least every "
                                                                   f"{wait.plan.safety_poll:g} s")
        except errors.AgentVaultError:
            yield from push.unregister(self.agent, wait.task_id, wait.plan, self.logger)
            raise
        if ended is None:
            interval = wait.plan.safety_poll if failure is None else self.timing.poll_interval
            wait.next_read = self._delay(interval, failure, wait.deadline)
            return None
        if not ended.state.is_terminal:
            yield from push.unregister(self.agent, wait.task_id, wait.plan, self.logger)
        return self._finished(wait.task_id, ended, PATH_PUSH, wait.progress.started, wait.progress)

    def _poll(self, task_id: str, deadline: float, state: _Progress) -> Program[Task]:
        """Poll tasks/get until the task ends the wait, the deadline passes, or the agent has lost the task."""
        polls = 0
        while True:
            polls += 1
            ended, failure = yield from self._read_once(task_id, polls, state)
            if ended is not None:
                return ended
            if self.clock() >= deadline:
                raise self._timed_out(task_id, state, f"{polls} reads, at least every {self.timing.poll_interval:g} s")
            yield Sleep(self._delay(self.timing.poll_interval, failure, deadline))

    def _read_once(self, task_id: str, polls: int, state: _Progress
                   ) -> Program[tuple[Task | None, errors.AgentVaultError | None]]:
        """
        One poll: the task if it ended the wait, else the failure a later read may mend (or None).

        A task that goes on is noted in ``state`` and not returned: the wait that follows keeps no copy.
        """
        try:
            task = yield from operations.get(self.agent, task_id)
        except errors.AgentVaultError as exc:
            self._poll_failed(task_id, exc, state)
            self.logger.info("Poll %d of task %s: %s", polls, task_id, exc.detail)
            return None, exc
        state.saw(task.state.value, self.clock())
        self.logger.info("Poll %d: task %s is %s", polls, task_id, task.state.value)
        return (task if task.state.ends_wait else None), None

    def _poll_failed(self, task_id: str, exc: errors.AgentVaultError, state: _Progress) -> None:
        """A failed ``get`` while polling: raise what waiting cannot mend, count what it may."""
        now = self.clock()
        tracing.failure(tracing.POLL_FAILED, exc)
        if isinstance(exc, errors.ProtocolViolationError):  # damaged in transit, or a broken agent
            state.unreadable += 1
            if state.unreadable >= UNREADABLE_GETS:
                raise exc
            return
        if not exc.retryable:
            raise exc
        if isinstance(exc, errors.TaskNotFoundError) and state.seen_at is not None:
            state.missing_since = state.missing_since if state.missing_since is not None else now
            if now - state.missing_since >= self.timing.lost_grace:
                raise errors.TaskLostError(
                    f"the agent no longer knows task {task_id}: it last showed it {now - state.seen_at:.1f} s ago "
                    f"({state.state}) and has answered '{exc.detail}' for {now - state.missing_since:.1f} s since; "
                    "it may have restarted and lost its in-memory tasks",
                    agent_url=self.agent.endpoint, method=exc.method, task_id=task_id,
                )

    def _final_task(self, task_id: str, deadline: float, state: _Progress) -> Program[Task]:
        """The stream said the task ended: read the authoritative task (poll if it lags or the read fails)."""
        try:
            task = yield from operations.get(self.agent, task_id)
        except errors.AgentVaultError as exc:
            self._poll_failed(task_id, exc, state)
            self.logger.info("Stream ended but tasks/get failed (%s); polling", exc.detail)
        else:
            if task.state.ends_wait:
                return task
            self.logger.info("Stream ended but tasks/get still says %s; polling", task.state.value)
        task = yield from self._poll(task_id, deadline, state)
        return task

    def _delay(self, planned: float, failure: errors.AgentVaultError | None, deadline: float) -> float:
        """The planned wait, stretched to the agent's ``Retry-After``, never past the deadline."""
        asked = getattr(failure, "retry_after", None) or 0.0
        if asked > planned:
            tracing.event(tracing.RETRY_AFTER, **{"agentvault.retry_after": asked, "agentvault.planned": planned})
        return min(max(planned, asked), max(deadline - self.clock(), 0.0))

    def _timed_out(self, task_id: str, state: _Progress, doing: str) -> errors.WaitTimeoutError:
        last = f"last seen {state.state}" if state.state else "never seen running"
        return errors.WaitTimeoutError(
            f"task did not finish within the overall timeout of {self.timing.overall_timeout:g} s (waited "
            f"{self.clock() - state.started:.1f} s; {last}; {doing})",
            agent_url=self.agent.endpoint, method=self.get_name(task_id), task_id=task_id,
        )

    def get_name(self, task_id: str) -> str:
        """The dialect's name for reading a task (``tasks/get``, ``GetTask``, ``GET /tasks/{id}``), for messages."""
        return self.agent.codec.get_request(self.agent.endpoint, task_id).op

    def _finished(self, task_id: str, task: Task, path: str, started: float, state: _Progress) -> FollowOutcome:
        waited = self.clock() - started
        self.logger.info(
            "Task %s ended %s; result delivered by %s after %.2f s (%d events, %d subscription attempts)",
            task_id, task.state.value, path, waited, state.events, state.attempts,
        )
        return delivered(FollowOutcome(task, path, waited, state.events, state.attempts, state.status_message))


def delivered(outcome: FollowOutcome) -> FollowOutcome:
    """The outcome on the current span: the task's state, the path, the counts and the agent's token usage."""
    if tracing.recording():
        usage = outcome.task.usage()
        tracing.event(tracing.DELIVERED, **{"agentvault.task.state": outcome.task.state.value,
                                           "agentvault.delivered_by": outcome.path})
        tracing.annotate(**{"agentvault.task.id": outcome.task.id, "agentvault.task.state": outcome.task.state.value,
                            "agentvault.delivered_by": outcome.path, "agentvault.events_seen": outcome.events_seen,
                            "agentvault.sse_attempts": outcome.sse_attempts,
                            "gen_ai.conversation.id": outcome.task.context_id,
                            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
                            "gen_ai.usage.output_tokens": usage.get("output_tokens")})
    return outcome
