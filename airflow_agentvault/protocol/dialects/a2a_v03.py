"""
The official A2A protocol 0.3 (also 0.2.x) over JSON-RPC: dialect ``a2a-0.3``.

Methods ``message/send`` (with ``configuration.blocking: false``, so the call returns once the task
exists), ``tasks/get``, ``tasks/cancel`` and ``tasks/resubscribe``; no version header. Objects carry
``kind`` (``task``, ``message``, ``status-update``, ``artifact-update``), parts ``{"kind": "text",
"text"}`` / ``{"kind": "data", "data"}`` / ``{"kind": "file", "file": {"uri" | "bytes", "mimeType",
"name"}}``, roles ``user`` / ``agent`` and lower-case states with hyphens. Stream events are bare
``data:`` lines carrying JSON-RPC envelopes; a status update has ``final``. Subscription errors come back
INSIDE a ``text/event-stream`` as one ``data:`` error object (a2a-sdk 0.3.x, and 1.x in 0.3 mode), or as
plain JSON: both are raised as the typed error. A 0.3.x SDK answers a resubscribe to a finished task
with -32602 "... is in terminal state", 1.x with -32004: both mean "no stream" (see :mod:`base`).
"""

from __future__ import annotations

import uuid
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.codec import UnknownEvent
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

DIALECT = "a2a-0.3"

STATES: dict[str, TaskState] = {
    "submitted": TaskState.SUBMITTED,
    "working": TaskState.WORKING,
    "input-required": TaskState.INPUT_REQUIRED,
    "auth-required": TaskState.AUTH_REQUIRED,
    "completed": TaskState.COMPLETED,
    "failed": TaskState.FAILED,
    "canceled": TaskState.CANCELED,
    "rejected": TaskState.REJECTED,
    "unknown": TaskState.UNKNOWN,
}

METHODS = {"send": "message/send", "get": "tasks/get", "cancel": "tasks/cancel", "subscribe": "tasks/resubscribe",
           "push_set": "tasks/pushNotificationConfig/set", "push_delete": "tasks/pushNotificationConfig/delete"}


# -- our models -> the wire ------------------------------------------------------------------------------


def part_to_wire(part: Any) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"kind": "text", "text": part.content}
    if isinstance(part, DataPart):
        return {"kind": "data", "data": part.content}
    if isinstance(part, FilePart):
        file = {"uri": part.url, "mimeType": part.media_type, "name": part.filename}
        return {"kind": "file", "file": {k: v for k, v in file.items() if v is not None}}
    raise TypeError(f"cannot send a part of type {type(part).__name__}")


def message_to_wire(message: Message, task_id: str | None = None) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "kind": "message",
        "messageId": uuid.uuid4().hex,
        "role": "agent" if message.role == "assistant" else "user",
        "parts": [part_to_wire(p) for p in message.parts],
    }
    if task_id:
        wire["taskId"] = task_id
    if message.metadata:
        wire["metadata"] = message.metadata
    return wire


# -- the wire -> our models ------------------------------------------------------------------------------


def part_from_wire(part: Any, **where: Any) -> Any:
    part = require_dict(part, "a message part", **where)
    kind = part.get("kind")
    metadata = part.get("metadata")
    if kind == "text":
        return TextPart(content=str(part.get("text") or ""), metadata=metadata)
    if kind == "data":
        return data_part(part.get("data"), metadata=metadata)
    if kind == "file":
        file = require_dict(part.get("file"), "a file part", **where)
        return file_part(file.get("uri"), file.get("bytes"), file.get("mimeType"), file.get("name"), metadata)
    raise errors.ProtocolViolationError(f"agent sent a part of unknown kind {kind!r:.40}", **where)


SHAPE = WireShape(part_from_wire, "user", STATES)
message_from_wire = SHAPE.message
artifact_parts = SHAPE.artifact_parts
task_from_wire = SHAPE.task


class V03StreamDecoder(A2AStreamDecoder):
    """One ``tasks/resubscribe`` (or ``message/stream``) stream: JSON-RPC envelopes of kind-tagged results."""

    shape = SHAPE

    def events_of(self, result: dict[str, Any]) -> list[TaskEvent]:
        kind = result.get("kind")
        task_id = self.task_id_of(result.get("taskId") or result.get("id"))
        if kind == "task":
            return self.snapshot(result)
        if kind == "status-update":
            return [self.status(task_id, result.get("status"))]
        if kind == "artifact-update":
            return [self.artifact(task_id, result.get("artifact"), append=bool(result.get("append")))]
        if kind == "message":
            return self.message(task_id, result)
        raise UnknownEvent(f"stream result of kind {kind!r:.40}")


class V03Codec(JsonRpcCodec):
    """A2A 0.3 JSON-RPC framing and decoding (no version header)."""

    dialect = DIALECT
    methods = METHODS
    shape = SHAPE
    decoder = V03StreamDecoder

    def send_params(self, message: Message, task_id: str | None, context_id: str | None = None) -> dict[str, Any]:
        wire = message_to_wire(message, task_id)
        if context_id:
            wire["contextId"] = context_id
        return {"message": wire, "configuration": {"blocking": False}}

    def push_params(self, task_id: str, config_id: str, url: str, token: str) -> dict[str, Any]:
        return {"taskId": task_id, "pushNotificationConfig": {"id": config_id, "url": url, "token": token}}

    def push_delete_params(self, task_id: str, config_id: str) -> dict[str, Any]:
        return {"id": task_id, "pushNotificationConfigId": config_id}

    def send_result(self, request: Request, payload: Any) -> str:
        result = require_dict(payload, "a message/send result", **request.where)
        if result.get("kind") == "message":
            if isinstance(result.get("taskId"), str) and result["taskId"]:
                return str(result["taskId"])
            raise errors.ProtocolViolationError(
                "agent answered with a message and no task: this operator follows tasks, and the agent "
                "completed the exchange without one", **request.where)
        return require_str(result, "id", "a task", **request.where)


