"""
Operators that start an agent task and follow it to its result.

``AgentVaultInitiateOperator`` sends ``tasks/send`` and hands the task id on through XCom, recording it
in the task state store the moment it exists, so an Airflow retry reconnects instead of starting a
second remote task. ``AgentVaultStreamOperator`` follows the task over SSE with retries, falls back to
polling, logs every event live and returns the result assembled from ``tasks/get``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, ResumableJobMixin
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.pipelines import storage
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.follow import TaskFollower
from airflow_agentvault.protocol.models import DataPart, Message, Task, TaskState, TextPart
from airflow_agentvault.protocol.result import DEFAULT_MAX_RESULT_BYTES, fit_result, outcome_of, result_size
from airflow_agentvault.protocol.timing import InvalidTimingError, Timing
from airflow_agentvault.retry_policy import fail_fast_policy
from airflow_agentvault.triggers.events import STATUS_DONE, event_task

#: Remote states in which an earlier attempt's task is still worth reconnecting to.
_ALIVE = {s.value for s in TaskState if not s.is_terminal} | {"NOT_VISIBLE"}


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, as the official providers read it."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def build_message(text: str | None, data: Any, metadata: dict[str, Any] | None = None) -> Message:
    """The user message from text and/or a JSON-serialisable dict; bad input fails before any request."""
    parts: list[Any] = []
    if text is not None and not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    if text and text.strip():
        parts.append(TextPart(content=text))
    if data is not None:
        if not isinstance(data, dict):
            raise ValueError(f"'data' must be a dict, got {type(data).__name__}")
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'data' is not JSON-serialisable: {exc}") from None
        if data:
            parts.append(DataPart(content=data))
    if not parts:
        raise ValueError("the message is empty: give 'text' and/or a non-empty 'data' dict")
    return Message(role="user", parts=parts, metadata=metadata or None)


def parse_timing(timing: Timing | dict[str, Any] | None) -> Timing:
    """Validate rendered timing values; bad ones fail the task at once with the param named."""
    if isinstance(timing, Timing):
        return timing
    try:
        return Timing.parse(timing)
    except InvalidTimingError as exc:
        raise AirflowFailException(str(exc)) from None


class CancelOnKillMixin:
    """``on_kill`` cancels the remote task being followed (``tasks/cancel``), unless switched off."""

    hook: AgentVaultHook
    cancel_on_kill: bool
    _following: str | None
    log: Any

    def on_kill(self) -> None:
        if not (self.cancel_on_kill and self._following):
            return
        try:
            answer = self.hook.client.cancel(self._following)
            self.log.info("Asked the agent to cancel task %s: success=%s", self._following, answer.success)
        except errors.AgentVaultError as exc:
            self.log.warning("Could not cancel task %s: %s", self._following, exc)


class ResultDeliveryMixin:
    """Turns the final task into the XCom result: outcome table, size limit, object storage."""

    hook: AgentVaultHook
    max_result_bytes: int
    truncate_result: bool
    result_storage: str
    task_id: str
    log: Any

    def deliver(self, task: Task, metadata: dict[str, Any], status_message: str | None, context: Any) -> dict[str, Any]:
        """The final task -> result or typed error; a result too big for XCom goes to object storage."""
        result = outcome_of(
            task, agent_url=self.hook.agent_url, metadata=metadata, status_message=status_message,
            max_result_bytes=sys.maxsize,
        )
        size = result_size(result)
        if size <= self.max_result_bytes or self.truncate_result or not self.result_storage:
            return fit_result(result, max_result_bytes=self.max_result_bytes, truncate=self.truncate_result)
        reference = storage.offload(result, self.result_storage, name=result_name(context, self.task_id))
        self.log.info(
            "Result is %d bytes, above the XCom limit of %d: stored at %s, passed on by reference",
            size, self.max_result_bytes, reference[storage.REF_KEY],
        )
        return reference


class AgentVaultInitiateOperator(ResumableJobMixin, BaseOperator):
    """
    Start a task on an agent and return its id (XCom ``return_value``); push ``agent_url`` too.

    :param agentvault_conn_id: the ``agentvault`` connection of the agent.
    :param text: message text (templated).
    :param data: a JSON-serialisable dict sent as a data part (templated).
    :param message_metadata: metadata of the message (templated).
    :param durable: record the remote id in the task state store so a retry reconnects (default True).
    """

    template_fields: Sequence[str] = ("text", "data", "message_metadata")
    template_fields_renderers = {"data": "json", "message_metadata": "json"}
    ui_color = "#e8f4fd"
    external_id_key = "agentvault_task_id"

    def __init__(
        self,
        *,
        agentvault_conn_id: str = AgentVaultHook.default_conn_name,
        text: str | None = None,
        data: dict[str, Any] | None = None,
        message_metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if self.retry_policy is None:  # neither given nor in default_args
            self.retry_policy = fail_fast_policy()
        self.agentvault_conn_id = agentvault_conn_id
        self.text = text
        self.data = data
        self.message_metadata = message_metadata

    @cached_property
    def hook(self) -> AgentVaultHook:
        return AgentVaultHook(self.agentvault_conn_id)

    def execute(self, context: Any) -> str:
        try:
            data = storage.resolve_references(self.data)
            self._message = build_message(self.text, data, self.message_metadata)
        except ValueError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        agent_task_id = self.execute_resumable(context)
        context["ti"].xcom_push(key="agent_url", value=self.hook.agent_url)
        return agent_task_id

    def submit_job(self, context: Any) -> str:
        agent_task_id = self.hook.client.send(self._message)
        self.log.info("Started task %s on agent %s", agent_task_id, self.hook.agent_url)
        return agent_task_id

    def get_job_status(self, external_id: Any, context: Any) -> str:
        try:
            return self.hook.client.get(str(external_id)).state.value
        except errors.TaskNotFoundError:
            # Delayed visibility looks like this too: starting a second task would be the worse mistake.
            return "NOT_VISIBLE"

    def is_job_active(self, status: str) -> bool:
        return status in _ALIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == TaskState.COMPLETED.value

    def poll_until_complete(self, external_id: Any, context: Any) -> str:
        """Nothing to wait for here (the sensor and stream operator wait); the mixin returns this on reconnect."""
        return str(external_id)

    def get_job_result(self, external_id: Any, context: Any) -> str:
        return str(external_id)


class AgentVaultStreamOperator(CancelOnKillMixin, ResultDeliveryMixin, BaseOperator):
    """
    Follow an agent task to its end and return its result (state, text, messages, artifacts, metadata).

    Subscribes over SSE with bounded, backed-off retries, logs each event as it arrives, falls back to
    polling on a disconnect or when the attempts are spent, and always takes the result from
    ``tasks/get``. FAILED, CANCELED and INPUT_REQUIRED raise typed errors with the agent's own words.

    :param agent_task_id: the agent's task id, usually the initiate operator's output (templated).
    :param agentvault_conn_id: the ``agentvault`` connection of the agent.
    :param timing: :class:`Timing` or a dict of its fields, e.g. from ``timing_from_params()`` (templated).
    :param cancel_on_kill: cancel the remote task when this Airflow task is killed (default True).
    :param max_result_bytes: XCom size limit of the result.
    :param truncate_result: above the limit, drop artifact contents with a note instead of storing them.
    :param result_storage: object storage URL for results above the limit (passed on by reference);
        default ``[agentvault] result_storage`` or ``$AIRFLOW_HOME/agentvault-results``; ``""`` turns it
        off, and an oversized result then fails with a clear error.
    :param deferrable: wait in the triggerer instead of a worker slot (default
        ``[operators] default_deferrable``); the same result and log lines either way.
    """

    template_fields: Sequence[str] = ("agent_task_id", "timing")
    ui_color = "#d8f0e0"

    def __init__(
        self,
        *,
        agent_task_id: str,
        agentvault_conn_id: str = AgentVaultHook.default_conn_name,
        timing: Timing | dict[str, Any] | None = None,
        cancel_on_kill: bool = True,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        truncate_result: bool = False,
        result_storage: str | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if self.retry_policy is None:  # neither given nor in default_args
            self.retry_policy = fail_fast_policy()
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.agent_task_id = agent_task_id
        self.result_storage = storage.default_result_storage() if result_storage is None else result_storage
        self.agentvault_conn_id = agentvault_conn_id
        self.timing = timing
        self.cancel_on_kill = cancel_on_kill
        self.max_result_bytes = max_result_bytes
        self.truncate_result = truncate_result
        self._following: str | None = None

    @cached_property
    def hook(self) -> AgentVaultHook:
        return AgentVaultHook(self.agentvault_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        timing = parse_timing(self.timing)
        agent_task_id = require_task_id(self.agent_task_id)
        self._following = agent_task_id
        follower = TaskFollower(self.hook.client, timing, logger=self.log)
        if self.deferrable:
            return self._defer(follower, agent_task_id, timing, context)
        outcome = follower.follow(agent_task_id)
        return self.deliver(outcome.task, outcome.metadata(), outcome.status_message, context)

    def _defer(self, follower: TaskFollower, agent_task_id: str, timing: Timing, context: Any) -> dict[str, Any]:
        """Look once on the worker (a finished task costs no deferral), then follow in the triggerer."""
        finished = follower.finished(agent_task_id)
        if finished is not None:
            return self.deliver(finished.task, finished.metadata(), None, context)
        self.log.info("Deferring: task %s will be followed in the triggerer", agent_task_id)
        # The trigger module (and Airflow's trigger base) only loads in tasks that defer.
        from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger

        self.defer(
            trigger=AgentVaultStreamTrigger(
                conn_id=self.agentvault_conn_id,
                agent_task_id=agent_task_id,
                timing=timing.model_dump(),
                deadline=time.time() + timing.overall_timeout,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: the same outcome table and result delivery as the synchronous path."""
        if isinstance(event, dict) and event.get("status") == STATUS_DONE and "task" not in event:
            # the final task was too big to travel in the event: read it again
            event = {**event, "task": self.hook.client.get(require_task_id(event.get("task_id"))).to_wire()}
        task, metadata, status_message = event_task(event, agent_url=self.hook.agent_url)
        self.log.info("Task %s ended %s in the triggerer (%s)", task.id, task.state.value, metadata)
        return self.deliver(task, metadata or {}, status_message, context)



def require_task_id(value: Any) -> str:
    """The agent task id must be a non-empty string; anything else is a wiring mistake in the DAG."""
    if not isinstance(value, str) or not value.strip() or value.strip() == "None":
        raise AirflowFailException(
            f"agent_task_id must be the agent's task id (usually the initiate task's output), got {value!r}"
        )
    return value.strip()


def result_name(context: Any, task_id: str) -> str:
    """A file name unique to this task instance, safe on any object store."""
    ti = context.get("ti")
    run_id = getattr(context.get("dag_run"), "run_id", None) or getattr(ti, "run_id", "run")
    dag_id = getattr(ti, "dag_id", "dag")
    map_index = getattr(ti, "map_index", -1)
    suffix = f"_{map_index}" if isinstance(map_index, int) and map_index >= 0 else ""
    return "/".join(re.sub(r"[^A-Za-z0-9._-]", "_", str(part)) for part in (dag_id, run_id, f"{task_id}{suffix}"))
