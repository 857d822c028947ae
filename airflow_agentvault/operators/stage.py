"""
A whole agent stage in one Airflow task: start (or reconnect), wait until visible, follow, deliver.

The compact form of :func:`~airflow_agentvault.pipelines.stage.agent_stage`, for users who value latency
over seeing each step as its own task. It runs the same pieces as the split form (the initiate step's
start-or-reconnect, the follower's existence wait and stream-then-poll, the same delivery); deferrable,
it waits for the result in the triggerer once the task is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_agentvault.operators.agentvault import FollowingOperator
from airflow_agentvault.operators.common import rendered_message
from airflow_agentvault.operators.remote_task import conversation_id, mark_seen, start_or_reconnect
from airflow_agentvault.operators.stage_timing import parse_timing
from airflow_agentvault.stage_tracing import traced


class AgentVaultStageOperator(FollowingOperator):
    """
    Start an agent task and follow it to its result, in one Airflow task (the compact stage).

    Takes the initiate operator's message arguments (``text``, ``data``, ``message_metadata``,
    ``resend_if_unsure``) and the stream operator's result arguments (see :class:`FollowingOperator`).
    A retry starts the stage again: it reconnects to the remote task of an earlier try while that task can
    still deliver, and starts a new one after FAILED, CANCELED or a loss (the agent forgot the task).
    """

    template_fields: Sequence[str] = ("text", "data", "message_metadata", "timing")
    starts_tasks = True
    template_fields_renderers = {"data": "json", "message_metadata": "json"}
    ui_color = "#e4ecf7"

    def __init__(self, *, text: str | None = None, data: dict[str, Any] | None = None,
                 message_metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.data = data
        self.message_metadata = message_metadata

    @traced("stage", conversation=lambda op, context: conversation_id(context, op.task_id))
    def execute(self, context: Any) -> dict[str, Any]:
        timing = parse_timing(self.timing)
        message = rendered_message(self.task_id, self.text, self.data, self.message_metadata)
        client = self.hook.client
        store = context.get("task_state_store")
        agent_task_id = start_or_reconnect(client, message, store, self.log,
                                           context_id=conversation_id(context, self.task_id))
        self._following = agent_task_id
        follower = self.follower(timing)
        visible = client.run(follower.wait_until_visible(follower.visibility_wait(agent_task_id)))
        mark_seen(store, agent_task_id)
        return self.follow_here_or_defer(agent_task_id, timing, context, seen=visible)
