"""
A sensor that waits until an agent knows the task it was just given.

Some agents register a task only after a while (a slow LLM, a queue); a hand-written orchestrator sleeps a
fixed 10 s and checks 3 times. This sensor is the core's existence wait (:class:`VisibilityWait`), one
step per poke, in ``poke`` or ``reschedule`` mode: an optional initial delay, then checks of ``tasks/get``
at a growing, capped interval (or the agent's ``Retry-After``) for a bounded number of attempts or until
the deadline. The wait's start and its count live in the task state store, so the bound holds across
reschedules.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_agentvault.compat import AirflowFailException, set_default_retry_policy
from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.links import AgentCardLink
from airflow_agentvault.operators.common import default_deferrable, require_task_id
from airflow_agentvault.operators.stage_timing import StageTiming, parse_timing
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.follow import Follower, VisibilityWait
from airflow_agentvault.protocol.models import Task
from airflow_agentvault.protocol.timing import Timing
from airflow_agentvault.retry_policy import fail_fast_policy
from airflow_agentvault.stage_tracing import traced
from airflow_agentvault.triggers.events import STATUS_EXISTS, STATUS_NOT_FOUND, raise_for_error

#: The clock the wait's start and deadline are read on: epoch seconds, the same in every process.
clock = time.time


class AgentVaultTaskExistsSensor(BaseSensorOperator):
    """
    Wait until ``tasks/get`` sees the agent task; return its observed state (XCom).

    "Task not found" and connection errors are retried within the bound; 401/403 and protocol errors
    fail at once. A task already finished is reported as such; the stream step then takes its result
    without streaming.

    :param agent_task_id: the agent's task id, usually the initiate operator's output (templated).
    :param agentvault_conn_id: the ``agentvault`` connection of the agent.
    :param timing: :class:`Timing` or a dict of its fields (templated); ``initial_delay``,
        ``verify_attempts``, ``verify_interval``, ``verify_backoff``, ``verify_max_interval`` and
        ``overall_timeout`` apply here.
    :param deferrable: wait in the triggerer instead of a worker slot (default
        ``[operators] default_deferrable``); one check is made on the worker first, so a task that is
        already visible costs no deferral.

    Between pokes Airflow sleeps (``poke``) or reschedules (``reschedule``) for ``poke_interval``, its
    public knob; after each step the sensor sets it to what the wait decided (the rest of the initial
    delay, the grown interval, or ``Retry-After``), so no private Airflow method is overridden. Airflow's
    own ``exponential_backoff`` (whole seconds with jitter, blind to ``Retry-After``) is refused: the
    timing's ``verify_backoff`` does that. The wait gives up at its own deadline with a WaitTimeoutError.
    """

    template_fields: Sequence[str] = ("agent_task_id", "timing")
    ui_color = "#fff4d6"
    operator_extra_links = (AgentCardLink(),)

    def __init__(
        self,
        *,
        agent_task_id: str,
        agentvault_conn_id: str = AgentVaultHook.default_conn_name,
        timing: Timing | dict[str, Any] | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("exponential_backoff"):
            raise ValueError("AgentVaultTaskExistsSensor grows its own interval: set the timing's verify_backoff "
                             "and verify_max_interval instead of exponential_backoff")
        super().__init__(**kwargs)
        set_default_retry_policy(self, lambda: fail_fast_policy(starts_tasks=False))
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.agent_task_id = agent_task_id
        self.agentvault_conn_id = agentvault_conn_id
        self.timing = timing

    @cached_property
    def hook(self) -> AgentVaultHook:
        return AgentVaultHook(self.agentvault_conn_id)

    # -- one run ---------------------------------------------------------------------------------

    @traced("wait_until_visible")
    def execute(self, context: Any) -> Any:
        task_id = require_task_id(self.agent_task_id)
        progress = _Progress(context)
        started = progress.recall("started_at")
        run = StageTiming.begin(self.timing, started_at=clock() if started is None else started)  # once per run
        if started is None:
            progress.remember("started_at", run.started_at)
        follower = Follower(self.hook.client.agent, run.timing, logger=self.log, clock=clock)
        wait = follower.visibility_wait(task_id, started=run.started_at, deadline=run.deadline,
                                        attempts=int(progress.recall("attempts") or 0))
        self._step = _Step(follower, wait, progress, self.hook.client)
        if self.deferrable:
            return self._execute_deferrable(run, task_id)
        return super().execute(context)

    def poke(self, context: Any) -> PokeReturnValue:
        """One step of the wait; not done, Airflow waits ``poke_interval``, which the step has just set."""
        task = self._step.take()
        if task is None:
            self.poke_interval = self._step.wait.next_delay or 0.0
        return PokeReturnValue(is_done=task is not None, xcom_value=task.state.value if task else None)

    def _execute_deferrable(self, run: StageTiming, task_id: str) -> Any:
        """Check once here unless an initial delay is asked for; otherwise wait in the triggerer."""
        if run.timing.initial_delay <= 0:
            task = self._step.take()
            if task is not None:
                return task.state.value
        self.log.info("Deferring: the triggerer will check task %s until it is visible", task_id)
        from airflow_agentvault.triggers.agentvault import AgentVaultTaskExistsTrigger

        self.defer(
            trigger=AgentVaultTaskExistsTrigger(conn_id=self.agentvault_conn_id, agent_task_id=task_id,
                                                attempts_done=self._step.wait.attempts, **run.trigger_arguments()),
            method_name="execute_complete",
        )

    @traced("wait_until_visible.resume")
    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        """Back from the triggerer: the state it saw, or the same failures as the synchronous path."""
        task_id = require_task_id(self.agent_task_id)
        try:
            raise_for_error(event, agent_url=self.hook.agent_url)
        except errors.AgentVaultError as exc:
            raise AirflowFailException(f"Cannot verify task {task_id}: {exc}") from None
        status = event.get("status") if isinstance(event, dict) else None
        if status == STATUS_EXISTS:
            self.log.info("Task %s is visible (state %s)", task_id, event.get("state"))
            return str(event.get("state"))
        if status == STATUS_NOT_FOUND:
            wait = VisibilityWait(task_id, parse_timing(self.timing), self.hook.agent_url, 0.0, 0.0,
                                  int(event.get("attempts", 0)), str(event.get("last_answer")))
            raise AirflowFailException(str(wait.gave_up(float(event.get("elapsed", 0)))))
        raise AirflowFailException(f"Unexpected event from the task-exists trigger: {str(event)[:200]}")


class _Step:
    """One run's wait: each step checks once (or takes the initial delay) and records the count."""

    def __init__(self, follower: Follower, wait: VisibilityWait, progress: _Progress, client: Any) -> None:
        self.follower, self.wait, self.progress, self.client = follower, wait, progress, client

    def take(self) -> Task | None:
        """The task once visible, else None; a spent bound or a hard error fails the task."""
        try:
            return self.client.run(self.follower.check_visible(self.wait))
        except errors.WaitTimeoutError as exc:  # the typed error stays the cause, in the log too
            raise AirflowFailException(str(exc)) from exc
        except errors.AgentVaultError as exc:
            raise AirflowFailException(f"Cannot verify task {self.wait.task_id}: {exc}") from None
        finally:
            self.progress.remember("attempts", self.wait.attempts)


class _Progress:
    """
    What the wait must remember across reschedules (its start and count): the task state store, keyed by try.

    An Airflow retry of the sensor gets a fresh bound, a reschedule does not. Without a store (tests,
    ``dag.test()``) the values live in this object, which a poke-mode sensor keeps for its whole run.
    """

    def __init__(self, context: Any) -> None:
        self.store = context.get("task_state_store")
        ti = context.get("ti")
        self.scope = f"try{getattr(ti, 'try_number', 0)}"
        self.memory: dict[str, Any] = {}

    def recall(self, key: str) -> Any:
        if self.store is not None:
            return self.store.get(f"{self.scope}.{key}")
        return self.memory.get(key)

    def remember(self, key: str, value: Any) -> None:
        if self.store is not None:
            self.store.set(f"{self.scope}.{key}", value)
        else:
            self.memory[key] = value
