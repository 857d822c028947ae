"""
Which Airflow this provider runs on, and what older ones lack: the one place that knows versions.

=====================================================  =======  =================================================
feature                                                since    on an older Airflow
=====================================================  =======  =================================================
``ExceptionRetryPolicy``: futile or unsafe errors fail  3.3      Airflow's standard retries for every error: set
at once                                                          ``retries`` low, or 0 where a send may be unsure
task state store: a retry reconnects to the remote      3.3      each try starts a new remote task (the log warns),
task of an earlier try                                           so a retry after a lost answer may run it twice
``amask_secret``, ``Connection.aextra_dejson``: async   3.3.2    the synchronous masker and ``extra_dejson``, which
reads in the triggerer                                           read memory only (the connection is fetched async)
trigger ``on_kill``: marking a deferred stream task     3.3      the remote task keeps running until it ends or
failed cancels the remote task                                   is canceled on the agent
the connection form from the provider info (labels,     3.3      Airflow's generic form (host, login, password,
placeholders, extra fields)                                      extra as JSON): every field still works
an agent's question waits for a person in               3.3      it waits in Airflow's HITL trigger: no worker
``awaiting_input``, holding no trigger                           slot, but a place in the triggerer
worker-free compact stage (``worker_free``): it starts  3.3      the stage starts on a worker and defers as
and ends in the triggerer (``start_from_trigger``)               before (3.2 and 3.1 do not start tasks in the
                                                                 triggerer, nor render fields there)
=====================================================  =======  =================================================

``PlainXComArg`` (one task's output, as opposed to an ``XComArg`` derived with ``map``, ``zip`` or
``concat``) is not exported by ``airflow.sdk``; its module, ``airflow.sdk.definitions.xcom_arg``, is the
same on 3.1 to 3.3, and this is the one place that imports it.

Lowest supported: Airflow 3.1 (the task SDK, ``BaseHook.aget_connection`` for the triggers, and the
TaskFlow decorator API this provider builds on).
"""

from __future__ import annotations

import re
from typing import Any

import airflow
import airflow.exceptions
import airflow.sdk
import airflow.sdk.exceptions
import airflow.sdk.log
from airflow.sdk.definitions.xcom_arg import PlainXComArg
from airflow.triggers.base import StartTriggerArgs

__all__ = [
    "AIRFLOW_VERSION", "AIRFLOW_V_3_3_PLUS", "AirflowFailException", "AirflowRescheduleException",
    "ExceptionRetryPolicy", "ParamValidationError", "PlainXComArg", "RetryAction", "RetryRule", "StartTriggerArgs",
    "TaskDeferred",
    "WORKER_FREE_STAGES", "aextra_dejson",
    "amask_secret", "conf", "set_default_retry_policy", "wait_for_person",
]


def _version(text: str) -> tuple[int, int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", text.split("+")[0])[:3]]
    return tuple(numbers + [0] * (3 - len(numbers)))  # type: ignore[return-value]


AIRFLOW_VERSION = _version(airflow.__version__)
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= (3, 3, 0)
#: The scheduler starts a task in the triggerer, which renders its fields (re-enabled in 3.3).
WORKER_FREE_STAGES = AIRFLOW_V_3_3_PLUS


def _exception(name: str) -> Any:
    """Task exceptions moved to ``airflow.sdk.exceptions`` in 3.2; before, ``airflow.exceptions`` had them."""
    return getattr(airflow.sdk.exceptions, name, None) or getattr(airflow.exceptions, name)


AirflowFailException: Any = _exception("AirflowFailException")
AirflowRescheduleException: Any = _exception("AirflowRescheduleException")
TaskDeferred: Any = _exception("TaskDeferred")
ParamValidationError: Any = _exception("ParamValidationError")

try:  # the task SDK's view of the configuration (3.2+); before, the core's
    from airflow.sdk.configuration import conf
except ImportError:  # pragma: no cover - Airflow 3.1
    from airflow.configuration import conf

#: Airflow's exception-based retry policy (None before 3.3: operators keep the standard retries).
ExceptionRetryPolicy: Any = getattr(airflow.sdk, "ExceptionRetryPolicy", None)
RetryAction: Any = getattr(airflow.sdk, "RetryAction", None)
RetryRule: Any = getattr(airflow.sdk, "RetryRule", None)


async def amask_secret(secret: str) -> None:
    """Register a secret with the masker without blocking the event loop (3.3.2+), else synchronously."""
    masker = getattr(airflow.sdk.log, "amask_secret", None)
    if masker is not None:
        await masker(secret)
    else:
        airflow.sdk.log.mask_secret(secret)


async def aextra_dejson(conn: Any) -> dict[str, Any]:
    """A connection's extra as a dict, read the way the running Airflow offers in an event loop."""
    reader = getattr(conn, "aextra_dejson", None)
    return (await reader()) if reader is not None else conn.extra_dejson


def wait_for_person(operator: Any, context: Any, *, subject: str, body: str, options: list[str], params: Any,
                    timeout: Any, method_name: str, kwargs: dict[str, Any]) -> None:
    """
    Ask a person through Airflow's Required Actions and pause the task until they answer.

    Airflow 3.3 parks the task in ``awaiting_input`` (no worker slot, no trigger); older versions
    defer to the standard provider's HITL trigger. Either way ``method_name`` resumes with the answer.
    """
    from airflow.sdk.execution_time.hitl import upsert_hitl_detail
    from airflow.sdk.timezone import utcnow

    serialized = {key: params.get_param(key).serialize() for key in params} if params else {}
    upsert_hitl_detail(ti_id=context["task_instance"].id, options=options, subject=subject, body=body,
                       defaults=None, multiple=False, params=serialized)
    task_awaiting_input = getattr(airflow.sdk.exceptions, "TaskAwaitingInput", None)
    if task_awaiting_input is not None:
        raise task_awaiting_input(method_name=method_name, kwargs=kwargs, timeout=timeout)
    from airflow.providers.standard.triggers.hitl import HITLTrigger  # pragma: no cover - Airflow 3.1, 3.2

    operator.defer(  # pragma: no cover - Airflow 3.1, 3.2
        trigger=HITLTrigger(ti_id=context["task_instance"].id, options=options, defaults=None, params=serialized,
                            multiple=False, timeout_datetime=utcnow() + timeout if timeout else None),
        method_name=method_name, kwargs=kwargs,
    )


def set_default_retry_policy(operator: Any, policy: Any) -> None:
    """Give ``operator`` our default policy unless it (or default_args) has one, where Airflow has policies."""
    if ExceptionRetryPolicy is not None and getattr(operator, "retry_policy", None) is None:
        operator.retry_policy = policy()
