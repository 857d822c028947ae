"""
A whole agent stage in one Airflow task: start (or reconnect), wait until visible, follow, deliver.

The compact form of :func:`~airflow_agentvault.pipelines.stage.agent_stage`, for users who value latency
over seeing each step as its own task. It runs the same pieces as the split form (the initiate step's
start-or-reconnect, the follower's existence wait and stream-then-poll, the same delivery); deferrable,
it waits for the result in the triggerer once the task is visible. ``worker_free`` (Airflow 3.3+) goes
further: the scheduler starts the task in the triggerer and the trigger ends it there
(:mod:`~airflow_agentvault.triggers.stage`), so the stage takes no worker slot at all unless an outcome
needs one (:mod:`~airflow_agentvault.operators.worker_free` decides, when the DAG is parsed).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from airflow_agentvault.operators.agentvault import FollowingOperator
from airflow_agentvault.operators.common import rendered_message
from airflow_agentvault.operators.remote_task import conversation_id, mark_seen, start_or_reconnect
from airflow_agentvault.operators.stage_timing import parse_timing
from airflow_agentvault.operators.worker_free import start_args
from airflow_agentvault.stage_tracing import traced


class AgentVaultStageOperator(FollowingOperator):
    """
    Start an agent task and follow it to its result, in one Airflow task (the compact stage).

    Takes the initiate operator's message arguments (``text``, ``data``, ``message_metadata``,
    ``resend_if_unsure``) and the stream operator's result arguments (see :class:`FollowingOperator`).
    A retry starts the stage again: it reconnects to the remote task of an earlier try while that task can
    still deliver, and starts a new one after FAILED, CANCELED or a loss (the agent forgot the task).

    :param worker_free: start and end the stage in the triggerer (Airflow 3.3+; implies deferrable): no
        worker slot, no task process. Where Airflow cannot (mapped, outlets, a pool...), the stage defers
        as before, warns and says why (:attr:`worker_free_reason`). ``None``: worker-free where it
        applies to this (deferrable) stage, quietly (what ``agent_stage`` passes). Default False.
    """

    template_fields: Sequence[str] = ("text", "data", "message_metadata", "timing")
    starts_tasks = True
    #: The message is made on a worker (``@task.agentvault``'s function): never worker-free.
    message_from_worker = False
    template_fields_renderers = {"data": "json", "message_metadata": "json"}
    ui_color = "#e4ecf7"

    def __init__(self, *, text: str | None = None, data: dict[str, Any] | None = None,
                 message_metadata: dict[str, Any] | None = None, worker_free: bool | None = False,
                 **kwargs: Any) -> None:
        if worker_free is True and kwargs.get("deferrable") is None:
            kwargs["deferrable"] = True
        super().__init__(**kwargs)
        self.text = text
        self.data = data
        self.message_metadata = message_metadata
        self.resend_if_unsure = bool(kwargs.get("resend_if_unsure", False))
        self.worker_free = worker_free
        #: Why this stage is not worker-free although asked, else None.
        self.worker_free_reason: str | None = None
        if worker_free is not False:
            trigger_args, self.worker_free_reason = start_args(self)
            if trigger_args is not None:
                self.start_trigger_args, self.start_from_trigger = trigger_args, True
            elif worker_free:
                warnings.warn(f"{self.task_id}: not worker-free, it defers as before: {self.worker_free_reason}",
                              UserWarning, stacklevel=2)

    @traced("stage", conversation=lambda op, context: conversation_id(context, op.task_id))
    def execute(self, context: Any) -> dict[str, Any]:
        if self.worker_free is not False and self.worker_free_reason:
            self.log.info("Not worker-free: %s; the stage runs on a worker and defers as before",
                          self.worker_free_reason)
        timing = parse_timing(self.timing)
        message = rendered_message(self.task_id, self.text, self.data, self.message_metadata)
        client = self.hook.client
        store, ti, mirror = context.get("task_state_store"), context.get("ti"), self.start_from_trigger
        agent_task_id = start_or_reconnect(client, message, store, self.log,
                                           context_id=conversation_id(context, self.task_id), ti=ti, mirror=mirror)
        self._following = agent_task_id
        follower = self.follower(timing)
        visible = client.run(follower.wait_until_visible(follower.visibility_wait(agent_task_id)))
        mark_seen(store, agent_task_id, ti=ti, mirror=mirror)
        return self.follow_here_or_defer(agent_task_id, timing, context, seen=visible)

    def resume_from_triggerer(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """A worker-free stage that needs a worker: run the stage here (a fallback) or judge the outcome."""
        if isinstance(event, dict) and event.get("status") == "fallback":
            self.log.info("Worker-free stage resumed on a worker: %s", event.get("reason"))
            return self.execute(context)
        return self.execute_complete(context, event)
