"""Errors a new try cannot fix fail the Airflow task at once; the rest keep the task's retries."""

from __future__ import annotations

import pytest

from airflow_agentvault.compat import ExceptionRetryPolicy, RetryAction
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.protocol import errors
from airflow_agentvault.retry_policy import fail_fast_policy
from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor

pytestmark = pytest.mark.skipif(ExceptionRetryPolicy is None, reason="retry policies came with Airflow 3.3; "
                                "test_compat.py checks what replaces them before")

WHERE = {"agent_url": "http://agent.test/a2a/", "method": "tasks/get", "task_id": "t-1"}


@pytest.mark.parametrize("error", [
    errors.NotAuthorizedError("HTTP 401", **WHERE),
    errors.ProtocolViolationError("not JSON", **WHERE),
    errors.InputRequiredError("input required", agent_message="Which decade?", **WHERE),
    errors.AuthRequiredError("auth required", **WHERE),
    errors.ResultTooLargeError("result too large", **WHERE),
    errors.CardSignatureError("no valid signature on the agent card", **WHERE),
    errors.UntrustedEndpointError("the agent card names an endpoint on another origin", **WHERE),
])
def test_futile_errors_fail_at_once(error):
    decision = fail_fast_policy().evaluate(error, try_number=1, max_tries=3)
    assert decision.action is RetryAction.FAIL
    assert decision.reason


@pytest.mark.parametrize("error", [
    errors.AgentUnreachableError("connection refused", **WHERE),
    errors.StreamDisconnectedError("stream broke", **WHERE),
    errors.TaskNotFoundError("Task not found", **WHERE),
    errors.TaskFailedError("task failed", agent_message="model crashed", **WHERE),
    errors.TaskCanceledError("task canceled", **WHERE),
    errors.WaitTimeoutError("gave up", **WHERE),
    RuntimeError("anything else"),
])
def test_errors_that_may_heal_keep_the_standard_retries(error):
    assert fail_fast_policy().evaluate(error, try_number=1, max_tries=3).action is RetryAction.DEFAULT


OPERATORS = [
    lambda **kw: AgentVaultInitiateOperator(task_id="initiate", text="hi", **kw),
    lambda **kw: AgentVaultTaskExistsSensor(task_id="visible", agent_task_id="t-1", **kw),
    lambda **kw: AgentVaultStreamOperator(task_id="stream", agent_task_id="t-1", **kw),
    lambda **kw: AgentVaultStageOperator(task_id="stage", text="hi", **kw),
]


@pytest.mark.parametrize("make", OPERATORS)
def test_every_operator_has_the_policy_unless_told_otherwise(make):
    assert make().retry_policy.evaluate(errors.NotAuthorizedError("401", **WHERE), 1, 3).action is RetryAction.FAIL
    own = ExceptionRetryPolicy(rules=[])
    assert make(retry_policy=own).retry_policy is own


@pytest.mark.parametrize("make", OPERATORS)
def test_a_policy_in_default_args_wins(make):
    from airflow.sdk import DAG

    own = ExceptionRetryPolicy(rules=[])
    with DAG("retry_policy_defaults", schedule=None, default_args={"retry_policy": own}):
        assert make().retry_policy is own


def test_an_ambiguous_send_is_not_retried_unless_the_user_opts_in():
    unsure = errors.AmbiguousSendError("reset after the request was sent", **WHERE)
    assert fail_fast_policy().evaluate(unsure, 1, 3).action is RetryAction.FAIL
    assert fail_fast_policy(resend_if_unsure=True).evaluate(unsure, 1, 3).action is RetryAction.DEFAULT
    initiate = AgentVaultInitiateOperator(task_id="initiate", text="hi", resend_if_unsure=True)
    assert initiate.retry_policy.evaluate(unsure, 1, 3).action is RetryAction.DEFAULT


@pytest.mark.parametrize("error", [
    errors.TaskFailedError("task failed", agent_message="model crashed", **WHERE),
    errors.TaskCanceledError("task canceled", **WHERE),
    errors.TaskLostError("the agent no longer knows the task", **WHERE),
])
def test_a_task_that_ended_without_result_is_retried_only_where_a_retry_starts_a_new_one(error):
    stream = AgentVaultStreamOperator(task_id="stream", agent_task_id="t-1")
    stage = AgentVaultStageOperator(task_id="stage", text="hi")
    assert stream.retry_policy.evaluate(error, 1, 3).action is RetryAction.FAIL
    assert stage.retry_policy.evaluate(error, 1, 3).action is RetryAction.DEFAULT
