"""
The triggers' event payloads, and turning them back into a result or a typed error on the worker.

A trigger only transports what it saw: the final task from ``tasks/get`` (``"done"``) or the error
that stopped it (``"error"``, by class name and detail, since exceptions do not survive the trip
through the database). :func:`event_task` is what the stream operator's ``execute_complete`` calls:
it validates the event, re-raises an error event as the class it names, and hands the final task to
the same delivery as the synchronous path (:func:`result.outcome_of`, size limit, object storage).
:func:`event_to_outcome` does the same without object storage, for operators of your own. It
imports nothing from Airflow.
"""

from __future__ import annotations

from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.models import Task, parse_model
from airflow_agentvault.protocol.result import DEFAULT_MAX_RESULT_BYTES, outcome_of

STATUS_DONE = "done"
STATUS_ERROR = "error"
STATUS_EXISTS = "exists"
STATUS_NOT_FOUND = "not_found"

#: Class name -> class, for every error of :mod:`protocol.errors` an error event may name.
ERROR_TYPES: dict[str, type[errors.AgentVaultError]] = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.AgentVaultError)
}


def error_event(exc: BaseException, *, task_id: str | None = None) -> dict[str, Any]:
    """An ``"error"`` payload for ``exc``: its class name, its detail and where it happened; no credential."""
    event: dict[str, Any] = {
        "status": STATUS_ERROR,
        "error_type": type(exc).__name__,
        "detail": getattr(exc, "detail", None) or str(exc),
        "task_id": getattr(exc, "task_id", None) or task_id,
    }
    for key in ("method", "code", "agent_message"):
        value = getattr(exc, key, None)
        if value is not None:
            event[key] = value
    return event


def raise_for_error(event: dict[str, Any], *, agent_url: str) -> None:
    """Re-raise an ``"error"`` payload as the typed error it names (other payloads pass)."""
    if not isinstance(event, dict) or event.get("status") != STATUS_ERROR:
        return
    error_type, detail = event.get("error_type"), event.get("detail")
    if not isinstance(error_type, str) or not isinstance(detail, str):
        raise _malformed(event, "an error event needs 'error_type' and 'detail' strings", agent_url)
    where: dict[str, Any] = {
        "agent_url": agent_url,
        "method": event.get("method"),
        "task_id": event.get("task_id"),
    }
    code = event.get("code")
    if isinstance(code, int):
        where["code"] = code
    cls = ERROR_TYPES.get(error_type)
    if cls is None:  # not a protocol error, e.g. the trigger found the connection incomplete
        raise errors.AgentVaultError(f"{error_type}: {detail}", **where)
    if issubclass(cls, errors.TaskOutcomeError):
        raise cls(detail, agent_message=event.get("agent_message"), **where)
    raise cls(detail, **where)


def event_task(event: Any, *, agent_url: str) -> tuple[Task, dict[str, Any] | None, str | None]:
    """Validate a stream trigger's event: the final task, its metadata and status message, or raise."""
    if not isinstance(event, dict):
        raise _malformed(event, "a trigger event must be a dict", agent_url)
    status = event.get("status")
    if status == STATUS_ERROR:
        raise_for_error(event, agent_url=agent_url)
    if status != STATUS_DONE:
        raise _malformed(event, f"unexpected trigger event status {status!r}", agent_url)
    if not isinstance(event.get("task"), dict):
        raise _malformed(event, "a 'done' event must carry the final task", agent_url)
    task = parse_model(Task, event["task"], agent_url=agent_url, method="tasks/get", task_id=event.get("task_id"))
    metadata = event.get("metadata")
    return task, metadata if isinstance(metadata, dict) else None, event.get("status_message") or None


def event_to_outcome(
    event: Any,
    *,
    agent_url: str,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    truncate: bool = False,
) -> dict[str, Any]:
    """
    The result of a stream trigger's event, or the typed error it stands for.

    ``"done"``: the transported task goes through :func:`outcome_of` (COMPLETED -> result dict; FAILED,
    CANCELED, INPUT_REQUIRED... -> their typed errors with the agent's words). ``"error"``: the named
    error class is raised with its detail. Anything else is a :class:`ProtocolViolationError`.
    """
    task, metadata, status_message = event_task(event, agent_url=agent_url)
    return outcome_of(
        task,
        agent_url=agent_url,
        metadata=metadata,
        status_message=status_message,
        max_result_bytes=max_result_bytes,
        truncate=truncate,
    )


def _malformed(event: Any, why: str, agent_url: str) -> errors.ProtocolViolationError:
    task_id = event.get("task_id") if isinstance(event, dict) else None
    return errors.ProtocolViolationError(
        f"malformed trigger event ({why}): {str(event)[:200]}", agent_url=agent_url, task_id=task_id
    )
