"""
JSON-RPC 2.0 framing and error mapping, free of I/O: the AgentVault codec's tables.

AgentVault answers every error with HTTP 200 JSON (PROTOCOLS.md), except authentication (401/403 with a
FastAPI ``{"detail"}`` body) and agents without the SDK's handlers (500 text/plain for unknown tasks).
The mapping from what came back to which error is made here, once, in tables.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.exchange import is_json

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


def build_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": f"req-{next(_ids)}"}


def raise_for_http_status(status: int, *, agent_url: str, method: str, task_id: str | None,
                          hint: str = "check the connection's URL", body: Any = None) -> None:
    """
    Map non-2xx HTTP answers to errors, quoting the agent's own error message and code from ``body``.

    A 401/403 body is never quoted: an authentication error may echo the credential it refused.
    """
    where: dict[str, Any] = {"agent_url": agent_url, "method": method, "task_id": task_id}
    if status < 300:
        return
    if status in (401, 403):
        raise errors.NotAuthorizedError(
            f"agent refused the request with HTTP {status}: check the connection's credentials", **where
        )
    said = agent_said(body)
    quoted = f" ({said})" if said else ""
    if status >= 500 or status in (408, 429):
        raise errors.AgentUnreachableError(f"agent answered HTTP {status}{quoted}", **where)
    raise errors.ProtocolViolationError(
        f"agent answered HTTP {status}{quoted} at {errors.redact_url(agent_url)}: {hint}", **where
    )


def agent_said(body: Any) -> str | None:
    """The message (and code) of an error object in an answer's body (JSON-RPC or HTTP+JSON), if any."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not error.get("message"):
        return None
    code = error.get("code")
    return f"{str(error['message'])[:300]}" + (f", code {code}" if isinstance(code, int) else "")


def error_from_object(error: Any, **where: Any) -> errors.AgentVaultError:
    """Turn a JSON-RPC error object into the matching typed error."""
    if not isinstance(error, dict):
        return errors.ProtocolViolationError(f"malformed JSON-RPC error object: {error!r:.200}", **where)
    code = error.get("code")
    message = str(error.get("message") or "no message")
    cls = ERROR_CODES.get(code, errors.AgentVaultError) if isinstance(code, int) else errors.AgentVaultError
    return cls(f"agent answered: {message}", code=code if isinstance(code, int) else None, data=error.get("data"), **where)


def decode_response(
    status: int, content_type: str | None, body: bytes, *, agent_url: str, method: str, task_id: str | None,
    hint: str = "check the connection's URL",
) -> Any:
    """Return the ``result`` of a JSON-RPC answer, or raise the typed error it stands for."""
    where: dict[str, Any] = {"agent_url": agent_url, "method": method, "task_id": task_id}
    raise_for_http_status(status, hint=hint, body=body, **where)
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
