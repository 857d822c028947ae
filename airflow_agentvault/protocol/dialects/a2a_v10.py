"""
The official A2A protocol 1.0 over JSON-RPC: dialect ``a2a-1.0``.

Methods ``SendMessage`` (with ``configuration.returnImmediately: true``; without it the call blocks
until the task ends), ``GetTask``, ``CancelTask`` and ``SubscribeToTask``, every call with the header
``A2A-Version: 1.0`` (a 1.x server answers -32009 VersionNotSupported without it). Objects have no
``kind``: results and stream events are wrapped as ``{"task"}``, ``{"message"}``, ``{"statusUpdate"}``
or ``{"artifactUpdate"}``; parts are ``{"text"}``, ``{"data"}``, ``{"url"}`` or ``{"raw"}`` with optional
``mediaType`` / ``filename``; roles ``ROLE_USER`` / ``ROLE_AGENT``; states ``TASK_STATE_*``. Stream events
are bare ``data:`` lines with JSON-RPC envelopes and no ``final`` flag. Subscription errors come back as
plain ``application/json`` (-32001 unknown task, -32004 finished task: see :mod:`base`).

The payload decoding here (:func:`task_from_wire`, :class:`V10StreamDecoder`) is shared with the
HTTP+JSON binding (:mod:`a2a_rest`), which carries the same objects without the JSON-RPC envelope.
"""

from __future__ import annotations

import uuid
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.codec import UnknownEvent
from airflow_agentvault.protocol.dialects.a2a_errors import VERSION_HEADER
from airflow_agentvault.protocol.dialects.base import (
    A2AStreamDecoder,
    JsonRpcCodec,
    WireShape,
    data_part,
    file_part,
    require_dict,
    require_str,
)
from airflow_agentvault.protocol.exchange import Request
from airflow_agentvault.protocol.models import (
    DataPart,
    FilePart,
    Message,
    TaskEvent,
    TaskState,
    TextPart,
)

DIALECT = "a2a-1.0"
PROTOCOL_VERSION = "1.0"
HEADERS = {VERSION_HEADER: PROTOCOL_VERSION}

STATES: dict[str, TaskState] = {
    "TASK_STATE_SUBMITTED": TaskState.SUBMITTED,
    "TASK_STATE_WORKING": TaskState.WORKING,
    "TASK_STATE_INPUT_REQUIRED": TaskState.INPUT_REQUIRED,
    "TASK_STATE_AUTH_REQUIRED": TaskState.AUTH_REQUIRED,
    "TASK_STATE_COMPLETED": TaskState.COMPLETED,
    "TASK_STATE_FAILED": TaskState.FAILED,
    "TASK_STATE_CANCELED": TaskState.CANCELED,
    "TASK_STATE_REJECTED": TaskState.REJECTED,
    "TASK_STATE_UNSPECIFIED": TaskState.UNKNOWN,
}

METHODS = {"send": "SendMessage", "get": "GetTask", "cancel": "CancelTask", "subscribe": "SubscribeToTask",
           "list": "ListTasks", "push_set": "CreateTaskPushNotificationConfig",
           "push_delete": "DeleteTaskPushNotificationConfig"}


# -- our models -> the wire ------------------------------------------------------------------------------


def part_to_wire(part: Any) -> dict[str, Any]:
    if isinstance(part, TextPart):
        wire: dict[str, Any] = {"text": part.content}
    elif isinstance(part, DataPart):
        wire = {"data": part.content, "mediaType": part.media_type}
    elif isinstance(part, FilePart):
        wire = {"url": part.url, "mediaType": part.media_type, "filename": part.filename}
    else:
        raise TypeError(f"cannot send a part of type {type(part).__name__}")
    return {k: v for k, v in wire.items() if v is not None}


def message_to_wire(message: Message, task_id: str | None = None, context_id: str | None = None) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "messageId": uuid.uuid4().hex,
        "role": "ROLE_AGENT" if message.role == "assistant" else "ROLE_USER",
        "parts": [part_to_wire(p) for p in message.parts],
    }
    if task_id:
        wire["taskId"] = task_id
    if context_id:
        wire["contextId"] = context_id
    if message.metadata:
        wire["metadata"] = message.metadata
    return wire


def send_params(message: Message, task_id: str | None, context_id: str | None = None) -> dict[str, Any]:
    """``SendMessageRequest`` without blocking: the answer comes as soon as the task exists."""
    return {"message": message_to_wire(message, task_id, context_id), "configuration": {"returnImmediately": True}}


# -- the wire -> our models ------------------------------------------------------------------------------


def part_from_wire(part: Any, **where: Any) -> Any:
    part = require_dict(part, "a message part", **where)
    metadata = part.get("metadata")
    if "text" in part:
        return TextPart(content=str(part["text"]), metadata=metadata)
    if "data" in part:
        return data_part(part["data"], part.get("mediaType"), metadata)
    if "url" in part or "raw" in part:
        return file_part(part.get("url"), part.get("raw"), part.get("mediaType"), part.get("filename"), metadata)
    raise errors.ProtocolViolationError(f"agent sent a part with no known content: {sorted(part)!r:.120}", **where)


SHAPE = WireShape(part_from_wire, "ROLE_USER", STATES)
message_from_wire = SHAPE.message
artifact_parts = SHAPE.artifact_parts
task_from_wire = SHAPE.task


def push_config(task_id: str, config_id: str, url: str, token: str) -> dict[str, Any]:
    """A ``TaskPushNotificationConfig``: the agent POSTs to ``url`` with ``X-A2A-Notification-Token: token``."""
    return {"taskId": task_id, "id": config_id, "url": url, "token": token}


def send_result(payload: Any, **where: Any) -> str:
    """The task id from a ``SendMessageResponse`` (``{"task"}``, or ``{"message"}`` naming its task)."""
    result = require_dict(payload, "a SendMessage result", **where)
    if isinstance(result.get("task"), dict):
        return require_str(result["task"], "id", "a task", **where)
    message = result.get("message")
    if isinstance(message, dict):
        if isinstance(message.get("taskId"), str) and message["taskId"]:
            return str(message["taskId"])
        raise errors.ProtocolViolationError(
            "agent answered with a message and no task: this operator follows tasks, and the agent "
            "completed the exchange without one", **where)
    raise errors.ProtocolViolationError("SendMessage result holds neither 'task' nor 'message'", **where)


class V10StreamDecoder(A2AStreamDecoder):
    """One 1.0 stream. ``enveloped``: JSON-RPC envelopes (this dialect) or bare objects (HTTP+JSON)."""

    shape = SHAPE

    def events_of(self, response: dict[str, Any]) -> list[TaskEvent]:
        """A ``StreamResponse`` -> our events."""
        if isinstance(response.get("task"), dict):
            return self.snapshot(response["task"])
        if isinstance(response.get("statusUpdate"), dict):
            update = response["statusUpdate"]
            return [self.status(self.task_id_of(update.get("taskId")), update.get("status"))]
        if isinstance(response.get("artifactUpdate"), dict):
            update = response["artifactUpdate"]
            return [self.artifact(self.task_id_of(update.get("taskId")), update.get("artifact"),
                                  append=bool(update.get("append")))]
        if isinstance(response.get("message"), dict):
            return self.message(self.task_id_of(response["message"].get("taskId")), response["message"])
        raise UnknownEvent(f"stream result with fields {sorted(response)!r:.120}")


class V10Codec(JsonRpcCodec):
    """A2A 1.0 JSON-RPC framing and decoding."""

    dialect = DIALECT
    methods = METHODS
    headers = HEADERS
    shape = SHAPE
    decoder = V10StreamDecoder

    def send_params(self, message: Message, task_id: str | None, context_id: str | None = None) -> dict[str, Any]:
        return send_params(message, task_id, context_id)

    def push_params(self, task_id: str, config_id: str, url: str, token: str) -> dict[str, Any]:
        return push_config(task_id, config_id, url, token)

    def push_delete_params(self, task_id: str, config_id: str) -> dict[str, Any]:
        return {"taskId": task_id, "id": config_id}

    def send_result(self, request: Request, payload: Any) -> str:
        return send_result(payload, **request.where)


