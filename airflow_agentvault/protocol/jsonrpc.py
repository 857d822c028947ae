"""
JSON-RPC 2.0 framing and error mapping, free of I/O so the sync and async clients share it.

AgentVault answers every error with HTTP 200 JSON (PROTOCOLS.md), except authentication (401/403 with a
FastAPI ``{"detail"}`` body) and agents without the SDK's handlers (500 text/plain for unknown tasks).
The mapping from what came back to which error is made here, once, in tables.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from airflow_agentvault.protocol import errors

_ids = itertools.count(1)

#: JSON-RPC error code -> error class. Codes not listed map to AgentVaultError.
ERROR_CODES: dict[int, type[errors.AgentVaultError]] = {
    -32001: errors.TaskNotFoundError,
    -32700: errors.ProtocolViolationError,
    -32600: errors.ProtocolViolationError,
    -32601: errors.ProtocolViolationError,
    -32602: errors.ProtocolViolationError,
    -32009: errors.ProtocolViolationError,  # A2A 1.0 VersionNotSupported
}

#: Methods whose 500 answer most likely means "task unknown" on an agent without the SDK's handlers.
TASK_METHODS = frozenset({"tasks/get", "tasks/cancel", "tasks/sendSubscribe"})


def build_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": f"req-{next(_ids)}"}


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    media_type = _media_type(content_type)
    return media_type in ("application/json", "application/json-rpc") or media_type.endswith("+json")


def is_event_stream(content_type: str | None) -> bool:
    return _media_type(content_type) == "text/event-stream"


def raise_for_http_status(status: int, *, agent_url: str, method: str, task_id: str | None) -> None:
    """Map non-200 HTTP answers to errors; the body is never quoted (it may echo a credential)."""
    where = {"agent_url": agent_url, "method": method, "task_id": task_id}
    if status < 300:
        return
    if status in (401, 403):
        raise errors.NotAuthorizedError(
            f"agent refused the request with HTTP {status}: check the connection's credentials", **where
        )
    if status == 500 and method in TASK_METHODS:
        raise errors.TaskNotFoundError(
            "agent answered HTTP 500; agents without the SDK's error handlers answer this for unknown tasks",
            **where,
        )
    if status >= 500 or status in (408, 429):
        raise errors.AgentUnreachableError(f"agent answered HTTP {status}", **where)
    raise errors.ProtocolViolationError(
        f"agent answered HTTP {status}: check that the connection points at the JSON-RPC endpoint", **where
    )


def error_from_object(error: Any, **where: Any) -> errors.AgentVaultError:
    """Turn a JSON-RPC error object into the matching typed error."""
    if not isinstance(error, dict):
        return errors.ProtocolViolationError(f"malformed JSON-RPC error object: {error!r:.200}", **where)
    code = error.get("code")
    message = str(error.get("message") or "no message")
    cls = ERROR_CODES.get(code, errors.AgentVaultError) if isinstance(code, int) else errors.AgentVaultError
    return cls(f"agent answered: {message}", code=code if isinstance(code, int) else None, data=error.get("data"), **where)


def decode_response(
    status: int, content_type: str | None, body: bytes, *, agent_url: str, method: str, task_id: str | None
) -> Any:
    """Return the ``result`` of a JSON-RPC answer, or raise the typed error it stands for."""
    where = {"agent_url": agent_url, "method": method, "task_id": task_id}
    raise_for_http_status(status, **where)
    if not is_json(content_type):
        raise errors.ProtocolViolationError(
            f"expected a JSON answer, got content type {content_type or 'none'!r}", **where
        )
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.ProtocolViolationError(f"agent sent malformed JSON ({exc})", **where) from None
    return result_of(envelope, **where)


def result_of(envelope: Any, **where: Any) -> Any:
    if not isinstance(envelope, dict):
        raise errors.ProtocolViolationError("JSON-RPC answer is not an object", **where)
    if envelope.get("error") is not None:
        raise error_from_object(envelope["error"], **where)
    if "result" not in envelope:
        raise errors.ProtocolViolationError("JSON-RPC answer has neither 'result' nor 'error'", **where)
    return envelope["result"]
