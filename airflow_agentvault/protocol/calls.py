"""
What each AgentVault method sends and how its answer is read, without I/O.

The sync client (requests) and the async client (httpx) differ only in how bytes travel; building a
call's params, validating its result, refusing a subscription answer that is not a stream and
counting a stream's events to tell a disconnect from an end all happen here, once.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.jsonrpc import decode_response, is_event_stream, is_json, raise_for_http_status
from airflow_agentvault.protocol.models import (
    AgentCard,
    CancelResult,
    Message,
    SendResult,
    Task,
    TaskEvent,
    TaskStatusEvent,
    parse_model,
)

SEND, GET, CANCEL, SUBSCRIBE = "tasks/send", "tasks/get", "tasks/cancel", "tasks/sendSubscribe"
CARD = "GET agent card"
STREAM_HEADERS = {"Accept": "text/event-stream"}


def where(agent_url: str, method: str, task_id: str | None = None) -> dict[str, Any]:
    """What every error of this call names."""
    return {"agent_url": agent_url, "method": method, "task_id": task_id}


def send_params(message: Message, task_id: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"message": message.to_wire()}
    if task_id:
        params["id"] = task_id
    return params


def read_send(result: Any, **at: Any) -> str:
    return parse_model(SendResult, result, **at).id


def read_task(result: Any, **at: Any) -> Task:
    return parse_model(Task, result, **at)


def read_cancel(result: Any, **at: Any) -> CancelResult:
    return parse_model(CancelResult, result, **at)


def read_card(status: int, json_body: Any, **at: Any) -> AgentCard:
    """``json_body`` is a callable returning the decoded body (raising ValueError on bad JSON)."""
    raise_for_http_status(status, **at)
    try:
        data = json_body()
    except ValueError:
        raise errors.ProtocolViolationError("agent card is not valid JSON", **at) from None
    return parse_model(AgentCard, data, **at)


def is_error_answer(status: int, content_type: str | None) -> bool:
    """A subscription answered with JSON (or an HTTP error): read the body and :func:`refuse_answer`."""
    return status >= 300 or is_json(content_type)


def refuse_answer(status: int, content_type: str | None, body: bytes, **at: Any) -> NoReturn:
    """Raise the error a JSON answer to a subscription carries (AgentVault's "Task not found")."""
    result = decode_response(status, content_type, body, **at)  # raises the error the body carries
    raise errors.ProtocolViolationError(
        f"subscription answered a JSON result instead of a stream: {json.dumps(result)[:200]}", **at
    )


def require_stream(content_type: str | None, **at: Any) -> None:
    if not is_event_stream(content_type):
        raise errors.ProtocolViolationError(
            f"expected text/event-stream, got content type {content_type or 'none'!r}", **at
        )


class StreamTally:
    """Counts a stream's events and says when it is over, or how it went wrong."""

    def __init__(self, **at: Any) -> None:
        self.at = at
        self.count = 0

    def finished_by(self, event: TaskEvent) -> bool:
        """Count ``event``; True once it ends the wait (terminal or input-required)."""
        self.count += 1
        return isinstance(event, TaskStatusEvent) and event.state.ends_wait

    def broke(self, exc: BaseException) -> errors.StreamDisconnectedError:
        return errors.StreamDisconnectedError(
            f"stream broke after {self.count} events ({type(exc).__name__})", **self.at
        )

    def ended(self) -> errors.StreamDisconnectedError:
        return errors.StreamDisconnectedError(
            f"stream ended after {self.count} events without a terminal state", **self.at
        )


#: Redirects followed per call: enough for ``/a2a`` -> ``/a2a/``, never a loop.
MAX_REDIRECTS = 3
_REDIRECTS = {301, 302, 303, 307, 308}


def redirect_target(http_method: str, url: str, status: int, location: str | None, **at: Any) -> str | None:
    """
    Where to follow a redirect, or None when the answer is not one we follow.

    Only within the origin the request went to, so credentials in headers never reach another host
    (requests and httpx strip only ``Authorization`` on such redirects, not an API key header); a POST
    is re-sent only on 307/308, which keep the method.
    """
    if status not in _REDIRECTS or not location:
        return None
    if http_method != "GET" and status not in (307, 308):
        return None
    target = urljoin(url, location)
    if _origin(target) != _origin(url):
        raise errors.ProtocolViolationError(
            f"agent redirected to another origin ({errors.redact_url(target)}); not followed, so that "
            "credentials stay with the connection's host", **at
        )
    return target


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.rsplit("@", 1)[-1].lower()
