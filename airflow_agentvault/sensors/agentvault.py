"""
A sensor that waits until an agent knows the task it was just given.

Some agents register a task only after a while (a slow LLM, a queue); a hand-written orchestrator sleeps a
fixed 10 s and checks 3 times. This sensor waits an optional initial delay, then checks ``tasks/get``
at a (optionally growing, capped) interval for a bounded number of attempts or until a timeout, in
``poke`` or ``reschedule`` mode. The attempt count and start time live in the task state store, so the
bound holds across reschedules.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, timezone

from airflow_agentvault.compat import AirflowFailException, AirflowRescheduleException, set_default_retry_policy
from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.links import AgentCardLink
from airflow_agentvault.operators.common import default_deferrable, parse_timing, require_task_id
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.follow import Follower, VisibilityWait
from airflow_agentvault.protocol.timing import Timing
from airflow_agentvault.retry_policy import fail_fast_policy
from airflow_agentvault.triggers.events import STATUS_EXISTS, STATUS_NOT_FOUND, raise_for_error


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
        kwargs.setdefault("poke_interval", Timing().verify_interval)
        super().__init__(**kwargs)
        set_default_retry_policy(self, lambda: fail_fast_policy(starts_tasks=False))
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.agent_task_id = agent_task_id
        self.agentvault_conn_id = agentvault_conn_id
        self.timing = timing

    @cached_property
    def hook(self) -> AgentVaultHook:
        return AgentVaultHook(self.agentvault_conn_id)

    # -- run-time configuration ------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        timing = parse_timing(self.timing)
        task_id = require_task_id(self.agent_task_id)
        self.poke_interval = timing.verify_interval
        self.timeout = timing.overall_timeout
        self.exponential_backoff = False  # the wait's own growth: sub-second and capped
        self._progress = _Progress(context)
        if self.deferrable:
            return self._execute_deferrable(timing, task_id)
        self._wait_initial_delay(timing, task_id)
        return super().execute(context)

    def _wait(self, timing: Timing, task_id: str) -> tuple[Follower, VisibilityWait]:
        """The existence wait, its count and start carried over from earlier pokes and reschedules."""
        follower = Follower(self.hook.client.agent, timing, logger=self.log, clock=time.time)
        started = self._progress.recall("verify_started_at")
        if started is None:
            started = time.time()
            self._progress.remember("verify_started_at", started)
        wait = follower.visibility_wait(task_id, started=float(started),
                                        attempts=int(self._progress.recall("verify_attempts") or 0))
        return follower, wait

    def _execute_deferrable(self, timing: Timing, task_id: str) -> Any:
        """Check once here unless an initial delay is asked for; otherwise wait in the triggerer."""
        started = time.time()
        attempts = 0
        if timing.initial_delay <= 0:
            result = self._check(timing, task_id)
            if result.is_done:
                return result.xcom_value
            attempts = int(self._progress.recall("verify_attempts") or 0)
        self.log.info("Deferring: the triggerer will check task %s until it is visible", task_id)
        from airflow_agentvault.triggers.agentvault import AgentVaultTaskExistsTrigger

        self.defer(
            trigger=AgentVaultTaskExistsTrigger(
                conn_id=self.agentvault_conn_id, agent_task_id=task_id, timing=timing.model_dump(),
                started_at=started, deadline=started + timing.overall_timeout, attempts_done=attempts,
            ),
            method_name="execute_complete",
        )

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
            timing = parse_timing(self.timing)
            wait = VisibilityWait(task_id, timing, self.hook.agent_url, 0.0, 0.0, int(event.get("attempts", 0)),
                                  str(event.get("last_answer")))
            raise AirflowFailException(str(wait.gave_up(float(event.get("elapsed", 0)))))
        raise AirflowFailException(f"Unexpected event from the task-exists trigger: {str(event)[:200]}")

    def _wait_initial_delay(self, timing: Timing, task_id: str) -> None:
        delay = timing.initial_delay
        if delay <= 0 or self._progress.recall("initial_delay_done"):
            return
        self._progress.remember("initial_delay_done", True)
        self.log.info("Waiting %.1f s (initial delay) before the first check of task %s", delay, task_id)
        if self.reschedule:
            raise AirflowRescheduleException(timezone.utcnow() + timedelta(seconds=delay))
        time.sleep(delay)

    def _get_next_poke_interval(self, started_at: Any, run_duration: Any, poke_count: int) -> float:
        """The wait's own next interval: growing and capped, or longer if the agent asked (``Retry-After``)."""
        asked = self._progress.recall("next_delay")
        if asked is not None:
            return float(asked)
        return parse_timing(self.timing).verify_interval_for(int(self._progress.recall("verify_attempts") or 1))

    # -- the check --------------------------------------------------------------------------------

    def poke(self, context: Any) -> bool | PokeReturnValue:
        return self._check(parse_timing(self.timing), require_task_id(self.agent_task_id))

    def _check(self, timing: Timing, task_id: str) -> PokeReturnValue:
        follower, wait = self._wait(timing, task_id)
        try:
            task = self.hook.client.run(follower.check_visible(wait))
        except errors.WaitTimeoutError as exc:
            raise AirflowFailException(str(exc)) from None
        except errors.AgentVaultError as exc:
            raise AirflowFailException(f"Cannot verify task {task_id}: {exc}") from None
        finally:
            self._progress.remember("verify_attempts", wait.attempts)
            if wait.next_delay is not None:  # the task state store keeps no None
                self._progress.remember("next_delay", wait.next_delay)
        return PokeReturnValue(is_done=task is not None, xcom_value=task.state.value if task else None)


class _Progress:
    """
    What the wait must remember across pokes and reschedules: the task state store, keyed by try.

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
