"""
Operators that start an agent task and follow it to its result.

``AgentVaultInitiateOperator`` sends the message and hands the task id on through XCom, recording it in
the task state store the moment it exists, so an Airflow retry reconnects instead of starting a second
remote task. ``AgentVaultStreamOperator`` follows the task (SSE with retries, polling fallback, every
event in the log) and returns the result read from ``tasks/get``; deferrable, it waits in the triggerer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_agentvault import result_storage as result_storage_module
from airflow_agentvault.compat import set_default_retry_policy
from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.links import AgentCardLink
from airflow_agentvault.operators.common import (
    cancel_remote,
    default_deferrable,
    rendered_message,
    require_task_id,
    result_name,
)
from airflow_agentvault.operators.remote_task import conversation_id, start_or_reconnect
from airflow_agentvault.operators.stage_timing import StageTiming, parse_timing
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.follow import Follower, FollowOutcome
from airflow_agentvault.protocol.models import Task
from airflow_agentvault.protocol.push import PUSH_MODES
from airflow_agentvault.protocol.result import DEFAULT_MAX_RESULT_BYTES
from airflow_agentvault.protocol.timing import Timing
from airflow_agentvault.retry_policy import fail_fast_policy
from airflow_agentvault.stage_tracing import traced
from airflow_agentvault.triggers.events import STATUS_DONE, event_task


class AgentVaultInitiateOperator(BaseOperator):
    """
    Start a task on an agent and return its id (XCom ``return_value``); push ``agent_url`` too.

    :param agentvault_conn_id: the ``agentvault`` connection of the agent.
    :param text: message text (templated).
    :param data: a JSON-serialisable dict sent as a data part (templated).
    :param message_metadata: metadata of the message (templated).
    :param durable: record the remote id in the task state store so a retry reconnects (default True).
    :param resend_if_unsure: let Airflow retry a send whose answer was lost after it reached the agent
        (default False: such a try fails without retry, since the agent may be running the task already).
    """

    template_fields: Sequence[str] = ("text", "data", "message_metadata")
    template_fields_renderers = {"data": "json", "message_metadata": "json"}
    ui_color = "#e8f4fd"
    operator_extra_links = (AgentCardLink(),)

    def __init__(
        self,
        *,
        agentvault_conn_id: str = AgentVaultHook.default_conn_name,
        text: str | None = None,
        data: dict[str, Any] | None = None,
        message_metadata: dict[str, Any] | None = None,
        durable: bool = True,
        resend_if_unsure: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        set_default_retry_policy(self, lambda: fail_fast_policy(resend_if_unsure=resend_if_unsure))
        self.agentvault_conn_id = agentvault_conn_id
        self.durable = durable
        self.text = text
        self.data = data
        self.message_metadata = message_metadata

    @cached_property
    def hook(self) -> AgentVaultHook:
        return AgentVaultHook(self.agentvault_conn_id)

    @traced("initiate", conversation=lambda op, context: conversation_id(context, op.task_id))
    def execute(self, context: Any) -> str:
        message = rendered_message(self.task_id, self.text, self.data, self.message_metadata)
        store = context.get("task_state_store") if self.durable else None
        agent_task_id = start_or_reconnect(self.hook.client, message, store, self.log,
                                           context_id=conversation_id(context, self.task_id))
        context["ti"].xcom_push(key="agent_url", value=self.hook.agent_url)
        return agent_task_id


class FollowingOperator(BaseOperator):
    """
    Base of the operators that follow a remote task to its result: delivery, deferral, cancel on kill.

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
    :param ask_person: a task that waits for an answer (INPUT_REQUIRED, AUTH_REQUIRED) is a result with
        its ``question`` for :class:`AgentVaultAskPersonOperator` instead of an error (default False).
    :param push: deferred, wait by push notification: ``auto`` (where the agent card offers it), ``on`` or
        ``off`` (stream); default the connection's extra ``push``. A worker always streams.

    When ``overall_timeout`` passes, the remote task is canceled too (unless ``cancel_on_kill`` is off).
    """

    #: Whether a retry of this operator starts a new remote task (the default retry policy depends on it).
    starts_tasks = False
    operator_extra_links = (AgentCardLink(),)

    def __init__(
        self,
        *,
        agentvault_conn_id: str = AgentVaultHook.default_conn_name,
        timing: Timing | dict[str, Any] | None = None,
        cancel_on_kill: bool = True,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        truncate_result: bool = False,
        result_storage: str | None = None,
        deferrable: bool | None = None,
        resend_if_unsure: bool = False,
        ask_person: bool = False,
        push: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if push is not None and push not in PUSH_MODES:
            raise ValueError(f"push must be one of {', '.join(PUSH_MODES)} (or None: the connection's), got {push!r}")
        self.push = push
        set_default_retry_policy(
            self, lambda: fail_fast_policy(starts_tasks=self.starts_tasks, resend_if_unsure=resend_if_unsure))
        self.ask_person = ask_person
        self.agentvault_conn_id = agentvault_conn_id
        self.timing = timing
        self.cancel_on_kill = cancel_on_kill
        self.max_result_bytes = max_result_bytes
        self.truncate_result = truncate_result
        self.result_storage = result_storage_module.default_result_storage() if result_storage is None \
            else result_storage
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._following: str | None = None  # read by on_kill, which Airflow calls from another thread

    @cached_property
    def hook(self) -> AgentVaultHook:
        return AgentVaultHook(self.agentvault_conn_id)

    def follower(self, timing: Timing) -> Follower:
        return Follower(self.hook.client.agent, timing, logger=self.log)

    def deliver(self, outcome: FollowOutcome, context: Any) -> dict[str, Any]:
        return self._deliver(outcome.task, outcome.metadata(), outcome.status_message, context)

    def _deliver(self, task: Task, metadata: dict[str, Any], status_message: str | None, context: Any
                 ) -> dict[str, Any]:
        return result_storage_module.deliver(
            task, agent_url=self.hook.agent_url, metadata=metadata, status_message=status_message,
            max_result_bytes=self.max_result_bytes, truncate=self.truncate_result, storage=self.result_storage,
            name=result_name(context, self.task_id), log=self.log, asking=self.ask_person,
        )

    def follow_here_or_defer(self, agent_task_id: str, timing: Timing, context: Any, seen: Task | None = None
                             ) -> dict[str, Any]:
        """Follow on the worker, or (deferrable, task still running) in the triggerer."""
        self._following = agent_task_id
        follower = self.follower(timing)
        client = self.hook.client
        if not self.deferrable:
            with self.cancel_on_timeout(agent_task_id):
                return self.deliver(client.run(follower.follow(agent_task_id, seen=seen)), context)
        if seen is None:
            seen = client.run(follower.look(agent_task_id))
        finished = follower.outcome_if_finished(agent_task_id, seen)
        if finished is not None:
            return self.deliver(finished, context)
        self.log.info("Deferring: task %s will be followed in the triggerer", agent_task_id)
        from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger

        self.defer(
            trigger=AgentVaultStreamTrigger(conn_id=self.agentvault_conn_id, agent_task_id=agent_task_id,
                                            cancel_on_kill=self.cancel_on_kill, push=self.push,
                                            known_state=None if seen is None else seen.state.value,
                                            **StageTiming.begin(timing).trigger_arguments()),
            method_name="execute_complete",
        )

    @traced("resume")
    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: the same outcome table and result delivery as the synchronous path."""
        if isinstance(event, dict) and event.get("status") == STATUS_DONE and "task" not in event:
            # the final task was too big to travel in the event: read it again
            event = {**event, "task": self.hook.client.get(require_task_id(event.get("task_id"))).to_wire()}
        with self.cancel_on_timeout(event.get("task_id") if isinstance(event, dict) else None):
            task, metadata, status_message = event_task(event, agent_url=self.hook.agent_url)
        self.log.info("Task %s ended %s in the triggerer (%s)", task.id, task.state.value, metadata)
        return self._deliver(task, metadata or {}, status_message, context)

    @contextlib.contextmanager
    def cancel_on_timeout(self, agent_task_id: str | None) -> Iterator[None]:
        """The overall timeout passed: cancel the remote task too (unless ``cancel_on_kill`` is off)."""
        try:
            yield
        except errors.WaitTimeoutError as exc:
            if self.cancel_on_kill and agent_task_id:
                self.log.warning("Stopped waiting for task %s (%s); canceling it on the agent", agent_task_id,
                                 exc.detail)
                cancel_remote(self.hook.client, agent_task_id, self.log)
            raise

    def on_kill(self) -> None:
        if self.cancel_on_kill:
            cancel_remote(self.hook.client, self._following, self.log)


class AgentVaultStreamOperator(FollowingOperator):
    """
    Follow an agent task to its end and return its result (state, text, messages, artifacts, metadata).

    Subscribes over SSE with bounded, backed-off retries, logs each event as it arrives, falls back to
    polling on a disconnect or when the attempts are spent, and always takes the result from
    ``tasks/get``. FAILED, CANCELED and INPUT_REQUIRED raise typed errors with the agent's own words.

    :param agent_task_id: the agent's task id, usually the initiate operator's output (templated).

    Other arguments: see :class:`FollowingOperator`.
    """

    template_fields: Sequence[str] = ("agent_task_id", "timing")
    ui_color = "#d8f0e0"

    def __init__(self, *, agent_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.agent_task_id = agent_task_id

    @traced("stream")
    def execute(self, context: Any) -> dict[str, Any]:
        timing = parse_timing(self.timing)
        return self.follow_here_or_defer(require_task_id(self.agent_task_id), timing, context)
