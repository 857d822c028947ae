"""
The operators' default retry policy: fail at once on errors a new try cannot fix.

Wrong credentials, an agent that breaks the protocol, a task waiting for a human's answer or for
credentials out of band, and a result over the size limit end the same way on every try; retrying
them only delays the failure by ``retries x retry_delay``. Everything else (an unreachable agent, a
task that failed or was canceled, which a retry resubmits, a timeout) keeps Airflow's standard
retries. A send whose answer was lost after it reached the agent fails without retry too: the
agent may be running the task already, and a new try would start a second one. Pass
``retry_policy=`` to an operator to choose otherwise.
"""

from __future__ import annotations

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

from airflow_agentvault.protocol import errors

#: Errors that every try of the same task would raise again.
FUTILE_TO_RETRY: tuple[type[errors.AgentVaultError], ...] = (
    errors.NotAuthorizedError,
    errors.ProtocolViolationError,
    errors.InputRequiredError,
    errors.AuthRequiredError,
    errors.ResultTooLargeError,
)


#: Errors where a new try could start a second remote task behind the user's back.
UNSAFE_TO_RETRY: tuple[type[errors.AgentVaultError], ...] = (errors.AmbiguousSendError,)


def fail_fast_policy() -> ExceptionRetryPolicy:
    """A fresh policy (operators must not share one mutable object)."""
    return ExceptionRetryPolicy(
        rules=[
            RetryRule(exception=list(FUTILE_TO_RETRY), action=RetryAction.FAIL,
                      reason="a new try would meet the same answer from the agent"),
            RetryRule(exception=list(UNSAFE_TO_RETRY), action=RetryAction.FAIL,
                      reason="the agent may have started the task already; a new try could run it twice"),
        ],
    )
