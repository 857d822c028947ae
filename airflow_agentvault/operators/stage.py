"""
A whole agent stage in one Airflow task: start, wait until visible, follow, deliver.

Each Airflow task costs about a second of scheduling on a small LocalExecutor, so the split form
(initiate >> sensor >> stream) pays about three. This compact form runs the same three steps in order
with the same code (the initiate operator's start and reconnect logic, the follower's existence check
and stream-then-poll, the stream operator's result delivery) for users who value latency over seeing
each step as its own task. The remote task id goes into the task state store the moment it exists, so
an Airflow retry reconnects to a live task instead of starting another one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_agentvault.operators.agentvault import (
    AgentVaultInitiateOperator,
    CancelOnKillMixin,
    ResultDeliveryMixin,
    parse_timing,
)
from airflow_agentvault.pipelines import storage
from airflow_agentvault.protocol.follow import FollowOutcome, TaskFollower
from airflow_agentvault.protocol.result import DEFAULT_MAX_RESULT_BYTES
from airflow_agentvault.protocol.timing import Timing


class AgentVaultStageOperator(CancelOnKillMixin, ResultDeliveryMixin, AgentVaultInitiateOperator):
    """
    Start an agent task and follow it to its result, in one Airflow task (the compact stage).

    Takes the initiate operator's message arguments and the stream operator's result arguments.

    :param timing: :class:`Timing` or a dict of its fields (templated).
    :param cancel_on_kill: cancel the remote task when this Airflow task is killed (default True).
    """

    template_fields: Sequence[str] = ("text", "data", "message_metadata", "timing")

    def __init__(
        self,
        *,
        timing: Timing | dict[str, Any] | None = None,
        cancel_on_kill: bool = True,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        truncate_result: bool = False,
        result_storage: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.timing = timing
        self.cancel_on_kill = cancel_on_kill
        self.max_result_bytes = max_result_bytes
        self.truncate_result = truncate_result
        self.result_storage = storage.default_result_storage() if result_storage is None else result_storage
        self._following: str | None = None
        self._outcome: FollowOutcome | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        self._timing = parse_timing(self.timing)
        self._context = context
        super().execute(context)  # start or reconnect, then poll_until_complete / get_job_result
        return self._result

    def poll_until_complete(self, external_id: Any, context: Any) -> str:
        self._following = str(external_id)
        follower = TaskFollower(self.hook.client, self._timing, logger=self.log)
        visible = follower.wait_until_visible(self._following)
        self._outcome = follower.follow(self._following, seen=visible)
        self._result = self._deliver_outcome(context)
        return self._following

    def get_job_result(self, external_id: Any, context: Any) -> str:
        if self._outcome is None:  # an earlier try already finished the task: take its result
            self._following = str(external_id)
            self._outcome = TaskFollower(self.hook.client, self._timing, logger=self.log).follow(self._following)
            self._result = self._deliver_outcome(context)
        return str(external_id)

    def _deliver_outcome(self, context: Any) -> dict[str, Any]:
        outcome = self._outcome
        return self.deliver(outcome.task, outcome.metadata(), outcome.status_message, context)
