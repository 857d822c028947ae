"""
A sensor that waits until an agent knows the task it was just given.

Some agents register a task only after a while (a slow LLM, a queue); the seed orchestrator slept a
fixed 10 s and checked 3 times. This sensor waits an optional initial delay, then checks ``tasks/get``
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
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.operators.agentvault import default_deferrable, parse_timing, require_task_id
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.follow import LIKELY_CAUSES
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
        if self.retry_policy is None:  # neither given nor in default_args
            self.retry_policy = fail_fast_policy()
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.agent_task_id = agent_task_id
        self.agentvault_conn_id = agentvault_conn_id
        self.timing = timing
        self._attempts = 0
        self._started: float | None = None
        self._last_answer = "no answer yet"

    @cached_property
    def hook(self) -> AgentVaultHook:
        return AgentVaultHook(self.agentvault_conn_id)

    # -- run-time configuration ------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        self._timing = parse_timing(self.timing)
        self._task = require_task_id(self.agent_task_id)
        self._store = context.get("task_state_store")
        ti = context.get("ti")
        # Keyed by try: an Airflow retry of the sensor gets a fresh bound, a reschedule does not.
        self._scope = f"try{getattr(ti, 'try_number', 0)}"
        self.poke_interval = self._timing.verify_interval
        self.timeout = self._timing.overall_timeout
        self.exponential_backoff = False  # our own growth below: sub-second and capped
        if self.deferrable:
            return self._execute_deferrable()
        self._wait_initial_delay()
        return super().execute(context)

    def _execute_deferrable(self) -> Any:
        """Check once here unless an initial delay is asked for; otherwise wait in the triggerer."""
        started = time.time()
        attempts = 0
        if self._timing.initial_delay <= 0:
            result = self.poke({})
            if result:
                return result.xcom_value
            attempts = self._attempts
        self.log.info("Deferring: the triggerer will check task %s until it is visible", self._task)
        # The trigger module (and Airflow's trigger base) only loads in tasks that defer.
        from airflow_agentvault.triggers.agentvault import AgentVaultTaskExistsTrigger

        self.defer(
            trigger=AgentVaultTaskExistsTrigger(
                conn_id=self.agentvault_conn_id,
                agent_task_id=self._task,
                timing=self._timing.model_dump(),
                started_at=started,
                deadline=started + self._timing.overall_timeout,
                attempts_done=attempts,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        """Back from the triggerer: the state it saw, or the same failures as the synchronous path."""
        self._timing = parse_timing(self.timing)
        self._task = require_task_id(self.agent_task_id)
        try:
            raise_for_error(event, agent_url=self.hook.agent_url)
        except errors.AgentVaultError as exc:
            raise AirflowFailException(f"Cannot verify task {self._task}: {exc}") from None
        status = event.get("status") if isinstance(event, dict) else None
        if status == STATUS_EXISTS:
            self.log.info("Task %s is visible (state %s)", self._task, event.get("state"))
            return str(event.get("state"))
        if status == STATUS_NOT_FOUND:
            self._last_answer = str(event.get("last_answer"))
            raise AirflowFailException(self._give_up_message(int(event.get("attempts", 0)),
                                                             float(event.get("elapsed", 0))))
        raise AirflowFailException(f"Unexpected event from the task-exists trigger: {str(event)[:200]}")

    def _wait_initial_delay(self) -> None:
        delay = self._timing.initial_delay
        if delay <= 0 or self._recall("initial_delay_done"):
            return
        self._remember("initial_delay_done", True)
        if self.reschedule:
            self.log.info("Waiting %.1f s (initial delay) before the first check of task %s", delay, self._task)
            raise AirflowRescheduleException(timezone.utcnow() + timedelta(seconds=delay))
        self.log.info("Waiting %.1f s (initial delay) before the first check of task %s", delay, self._task)
        time.sleep(delay)

    def _get_next_poke_interval(self, started_at: Any, run_duration: Any, poke_count: int) -> float:
        return self._timing.verify_interval_for(self._attempt_count())

    # -- the check --------------------------------------------------------------------------------

    def poke(self, context: Any) -> bool | PokeReturnValue:
        attempt = self._attempt_count() + 1
        self._remember("verify_attempts", attempt)
        self._attempts = attempt
        started = self._started_at()
        try:
            task = self.hook.client.get(self._task)
        except (errors.TaskNotFoundError, errors.AgentUnreachableError) as exc:
            self._last_answer = exc.detail
            self.log.info(
                "Check %d of %d: task %s not visible yet (%s)", attempt, self._timing.verify_attempts, self._task,
                exc.detail,
            )
            if attempt >= self._timing.verify_attempts:
                raise AirflowFailException(self._give_up_message(attempt, time.time() - started)) from None
            return False
        except errors.AgentVaultError as exc:
            raise AirflowFailException(f"Cannot verify task {self._task}: {exc}") from None
        if task.state.ends_wait:
            self.log.info(
                "Task %s is already %s; the stream step will take its result without streaming",
                self._task, task.state.value,
            )
        else:
            self.log.info("Task %s exists (check %d): state %s", self._task, attempt, task.state.value)
        return PokeReturnValue(is_done=True, xcom_value=task.state.value)

    def _give_up_message(self, attempts: int, elapsed: float) -> str:
        return (
            f"Task {self._task} never became visible on agent {self.hook.agent_url}: {attempts} checks of "
            f"tasks/get over {elapsed:.1f} s (initial delay {self._timing.initial_delay:g} s, interval "
            f"{self._timing.verify_interval:g} s growing x{self._timing.verify_backoff:g} up to "
            f"{self._timing.verify_max_interval:g} s); last answer: {self._last_answer}. Likely causes: "
            f"{LIKELY_CAUSES}."
        )

    # -- state that must survive reschedules ---------------------------------------------------

    def _attempt_count(self) -> int:
        return int(self._recall("verify_attempts") or self._attempts or 0)

    def _started_at(self) -> float:
        started = self._recall("verify_started_at") or self._started
        if started is None:
            started = time.time()
            self._remember("verify_started_at", started)
        self._started = float(started)
        return self._started

    def _recall(self, key: str) -> Any:
        if self._store is not None:
            return self._store.get(f"{self._scope}.{key}")
        return getattr(self, f"_mem_{key}", None)

    def _remember(self, key: str, value: Any) -> None:
        if self._store is not None:
            self._store.set(f"{self._scope}.{key}", value)
        else:
            setattr(self, f"_mem_{key}", value)
