"""
How A2A agents say what went wrong: JSON-RPC codes and HTTP+JSON reasons -> our typed errors.

One table for every A2A dialect (a REST ``reason`` is turned into the JSON-RPC code of the same A2A
error first). Subscribing to a task that has no stream any more (UnsupportedOperation -32004, or a 0.3
SDK's -32602 "is in terminal state") is :class:`~airflow_agentvault.protocol.errors.StreamUnavailableError`:
the follower reads the task with ``get`` at once instead of retrying. TaskNotCancelable (-32002) on
``cancel`` is answered like AgentVault's ``success: false`` by the codecs.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.errors import StreamUnavailableError
from airflow_agentvault.protocol.exchange import is_json
from airflow_agentvault.protocol.jsonrpc import raise_for_http_status

VERSION_HEADER = "A2A-Version"

TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
UNSUPPORTED_OPERATION = -32004
VERSION_NOT_SUPPORTED = -32009
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

#: A2A error code -> error class. Codes not listed map to AgentVaultError.
A2A_ERROR_CODES: dict[int, type[errors.AgentVaultError]] = {
    TASK_NOT_FOUND: errors.TaskNotFoundError,
    -32003: errors.ProtocolViolationError,  # PushNotificationNotSupported
    UNSUPPORTED_OPERATION: errors.ProtocolViolationError,
    -32005: errors.ProtocolViolationError,  # ContentTypeNotSupported
    -32006: errors.ProtocolViolationError,  # InvalidAgentResponse
    -32007: errors.ProtocolViolationError,  # ExtendedAgentCardNotConfigured
    -32008: errors.ProtocolViolationError,  # ExtensionSupportRequired
    VERSION_NOT_SUPPORTED: errors.ProtocolViolationError,
    -32700: errors.ProtocolViolationError,
    -32600: errors.ProtocolViolationError,
    METHOD_NOT_FOUND: errors.ProtocolViolationError,
    INVALID_PARAMS: errors.ProtocolViolationError,
}

#: HTTP+JSON error ``reason`` (google.rpc.ErrorInfo) -> the JSON-RPC code of the same A2A error.
A2A_REASONS: dict[str, int] = {
    "TASK_NOT_FOUND": TASK_NOT_FOUND,
    "TASK_NOT_CANCELABLE": TASK_NOT_CANCELABLE,
    "PUSH_NOTIFICATION_NOT_SUPPORTED": -32003,
    "UNSUPPORTED_OPERATION": UNSUPPORTED_OPERATION,
    "CONTENT_TYPE_NOT_SUPPORTED": -32005,
    "INVALID_AGENT_RESPONSE": -32006,
    "EXTENDED_AGENT_CARD_NOT_CONFIGURED": -32007,
    "EXTENSION_SUPPORT_REQUIRED": -32008,
    "VERSION_NOT_SUPPORTED": VERSION_NOT_SUPPORTED,
    "INVALID_PARAMS": INVALID_PARAMS,
    "INVALID_REQUEST": -32600,
    "METHOD_NOT_FOUND": METHOD_NOT_FOUND,
    "INTERNAL_ERROR": -32603,
}

_HINTS = {
    VERSION_NOT_SUPPORTED: "the agent speaks another A2A version: set the connection's dialect to the one its "
    "card lists, or to auto",
    METHOD_NOT_FOUND: "the agent does not know this method: it may speak another A2A version or dialect; "
    "set the connection's dialect to auto",
}


def error_for(code: Any, message: str, *, data: Any = None, subscribing: bool = False,
              **where: Any) -> errors.AgentVaultError:
    """The typed error for an A2A error (JSON-RPC code, or a REST reason already turned into its code)."""
    code = code if isinstance(code, int) else None
    if subscribing and (
        code == UNSUPPORTED_OPERATION or (code == INVALID_PARAMS and "terminal state" in message)
    ):
        return StreamUnavailableError(
            f"agent offers no stream for this task ({message}); reading it with get instead",
            code=code, data=data, **where,
        )
    cls = A2A_ERROR_CODES.get(code, errors.AgentVaultError) if code is not None else errors.AgentVaultError
    hint = f"; {_HINTS[code]}" if code in _HINTS else ""
    return cls(f"agent answered: {message}{hint}", code=code, data=data, **where)


def jsonrpc_error(error: Any, *, subscribing: bool = False, **where: Any) -> errors.AgentVaultError:
    """A JSON-RPC error object (plain answer or inside an event stream) -> the typed error."""
    if not isinstance(error, dict):
        return errors.ProtocolViolationError(f"malformed JSON-RPC error object: {error!r:.200}", **where)
    return error_for(error.get("code"), str(error.get("message") or "no message"), data=error.get("data"),
                     subscribing=subscribing, **where)


def rest_error(error: Any, status: int | None, *, subscribing: bool = False, **where: Any) -> errors.AgentVaultError:
    """An HTTP+JSON error object ``{code, status, message, details[{reason}]}`` -> the typed error."""
    if not isinstance(error, dict):
        return errors.ProtocolViolationError(f"malformed error object: {error!r:.200}", **where)
    reasons = [d.get("reason") for d in error.get("details") or [] if isinstance(d, dict)]
    code = next((A2A_REASONS[r] for r in reasons if r in A2A_REASONS), None)
    message = str(error.get("message") or error.get("status") or f"HTTP {status}")
    if code is None:
        label = error.get("status") or status
        return errors.ProtocolViolationError(f"agent answered {label}: {message}", data=error.get("details"), **where)
    return error_for(code, message, data=error.get("details"), subscribing=subscribing, **where)


def _json_body(content_type: str | None, body: bytes, where: dict[str, Any]) -> Any:
    if not is_json(content_type):
        raise errors.ProtocolViolationError(f"expected a JSON answer, got content type {content_type or 'none'!r}",
                                            **where)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.ProtocolViolationError(f"agent sent malformed JSON ({exc})", **where) from None


def decode_jsonrpc(status: int, content_type: str | None, body: bytes, *, subscribing: bool = False,
                   hint: str = "check the connection's URL", **where: Any) -> Any:
    """The ``result`` of a JSON-RPC answer, or the typed error it (or its HTTP status) stands for."""
    if status in (401, 403):
        raise_for_http_status(status, hint=hint, body=body, **where)
    if is_json(content_type):
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            envelope = None
        if isinstance(envelope, dict) and envelope.get("error") is not None:
            raise jsonrpc_error(envelope["error"], subscribing=subscribing, **where)
    raise_for_http_status(status, hint=hint, body=body, **where)
    envelope = _json_body(content_type, body, where)
    if not isinstance(envelope, dict):
        raise errors.ProtocolViolationError("JSON-RPC answer is not an object", **where)
    if "result" not in envelope:
        raise errors.ProtocolViolationError("JSON-RPC answer has neither 'result' nor 'error'", **where)
    return envelope["result"]


def decode_rest(status: int, content_type: str | None, body: bytes, *, subscribing: bool = False,
                hint: str = "check the connection's URL", **where: Any) -> Any:
    """The JSON body of an HTTP+JSON answer, or the typed error it (or its HTTP status) stands for."""
    if status in (401, 403):
        raise_for_http_status(status, hint=hint, body=body, **where)
    if status >= 300 and is_json(content_type):
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            raise rest_error(payload["error"], status, subscribing=subscribing, **where)
    raise_for_http_status(status, hint=hint, body=body, **where)
    return _json_body(content_type, body, where)
