"""
The operators' default retry policy: fail at once where a new try cannot help or could do harm.

Wrong credentials, an agent that breaks the protocol, an agent card the connection does not trust, a
task waiting for a human's answer or for credentials out of band, and a result over the size limit end
the same way on every try; retrying them only delays the failure by ``retries x retry_delay``. A send whose answer was lost after it
reached the agent (:class:`AmbiguousSendError`) is not retried either: the agent may be running the
task already, and a new try would start a second one (``resend_if_unsure=True`` on the operator opts in).

What a retry can do about a task that ended without a result depends on the form: the initiate step
and the compact stage start a new remote task, so FAILED, CANCELED and a lost task keep Airflow's
retries; the stream step and the sensor would only read the same task again, so for them these fail at
once (clear the stage's task group to start over). Pass ``retry_policy=`` to an operator to choose otherwise.
"""


from __future__ import annotations

from typing import Any

from airflow_agentvault.compat import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow_agentvault.protocol import errors

#: Errors that every try of the same task would raise again.
FUTILE_TO_RETRY: tuple[type[errors.AgentVaultError], ...] = (
    errors.NotAuthorizedError,
    errors.ProtocolViolationError,
    errors.UntrustedCardError,
    errors.InputRequiredError,
    errors.AuthRequiredError,
    errors.ResultTooLargeError,
    errors.QuestionUnansweredError,
    errors.TooManyQuestionsError,
)


#: Errors where a new try could start a second remote task behind the user's back.
UNSAFE_TO_RETRY: tuple[type[errors.AgentVaultError], ...] = (errors.AmbiguousSendError,)

#: Ended tasks that only a new send can change: futile for the steps that follow an existing task.
ENDED_WITHOUT_RESULT: tuple[type[errors.AgentVaultError], ...] = (
    errors.TaskFailedError,
    errors.TaskCanceledError,
    errors.TaskLostError,
)


def fail_fast_policy(*, starts_tasks: bool = True, resend_if_unsure: bool = False) -> Any:
    """
    A fresh policy (operators must not share one mutable object).

    :param starts_tasks: the operator starts a new remote task on retry (initiate, compact stage).
    :param resend_if_unsure: retry an :class:`AmbiguousSendError` too (a task may then run twice).
    """
    rules = [RetryRule(exception=list(FUTILE_TO_RETRY), action=RetryAction.FAIL,
                       reason="a new try would meet the same answer from the agent")]
    if not resend_if_unsure:
        rules.append(RetryRule(exception=list(UNSAFE_TO_RETRY), action=RetryAction.FAIL,
                               reason="the agent may have started the task already; a new try could run it twice"))
    if not starts_tasks:
        rules.append(RetryRule(exception=list(ENDED_WITHOUT_RESULT), action=RetryAction.FAIL,
                               reason="a new try would read the same ended task; clear the stage to start a new one"))
    return ExceptionRetryPolicy(rules=rules)
