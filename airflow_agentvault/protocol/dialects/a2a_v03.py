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

import json
import uuid
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.dialects.base import (
    A2AClient,
    ArtifactAssembler,
    AsyncA2AClient,
    Call,
    JsonRpcCodec,
    StreamDecoder,
    WireShape,
    data_part,
    file_part,
    jsonrpc_error,
    require_dict,
    require_str,
    state_from,
    status_event,
)
from airflow_agentvault.protocol.models import (
    DataPart,
    FilePart,
    Message,
    TaskArtifactEvent,
    TaskEvent,
    TaskMessageEvent,
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

METHODS = {"send": "message/send", "get": "tasks/get", "cancel": "tasks/cancel", "subscribe": "tasks/resubscribe"}


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


class V03StreamDecoder(StreamDecoder):
    """One ``tasks/resubscribe`` (or ``message/stream``) stream: JSON-RPC envelopes of kind-tagged results."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.artifacts = ArtifactAssembler()

    def feed(self, data: str) -> list[TaskEvent]:
        where = self.call.where
        try:
            envelope = json.loads(data)
        except ValueError as exc:
            raise errors.ProtocolViolationError(f"stream event carries malformed JSON ({exc})", **where) from None
        envelope = require_dict(envelope, "a stream event", **where)
        if envelope.get("error") is not None:
            raise jsonrpc_error(envelope["error"], subscribing=True, **where)
        if "result" not in envelope:
            raise errors.ProtocolViolationError("stream event has neither 'result' nor 'error'", **where)
        return self.events_of(require_dict(envelope["result"], "a stream result", **where))

    def events_of(self, result: dict[str, Any]) -> list[TaskEvent]:
        where = self.call.where
        kind = result.get("kind")
        task_id = result.get("taskId") or result.get("id") or self.call.task_id
        if kind == "task":  # the first event of a stream: a snapshot of the task, read as a status event
            task = task_from_wire(result, **where)
            status = require_dict(result.get("status"), "a task status", **where)
            events: list[TaskEvent] = []
            for artifact in result.get("artifacts") or []:
                events.append(self._artifact(task.id, artifact, append=False))
            _, message = message_from_wire(status.get("message"), **where)
            events.append(status_event(task.id, task.state, status.get("timestamp"), message))
            return events
        if kind == "status-update":
            status = require_dict(result.get("status"), "a task status", **where)
            _, message = message_from_wire(status.get("message"), **where)
            return [status_event(task_id, state_from(status.get("state"), STATES, **where), status.get("timestamp"),
                                 message)]
        if kind == "artifact-update":
            return [self._artifact(task_id, result.get("artifact"), append=bool(result.get("append")))]
        if kind == "message":
            _, message = message_from_wire(result, **where)
            return [TaskMessageEvent(task_id=task_id, message=message)] if message is not None else []
        raise errors.ProtocolViolationError(f"stream event of unknown kind {kind!r:.40}", **where)

    def _artifact(self, task_id: str, artifact: Any, *, append: bool) -> TaskArtifactEvent:
        where = self.call.where
        artifact = require_dict(artifact, "an artifact", **where)
        assembled = self.artifacts.add(
            require_str(artifact, "artifactId", "an artifact", **where), artifact.get("name"),
            artifact_parts(artifact, **where), append=append, metadata=artifact.get("metadata"),
            description=artifact.get("description"),
        )
        return TaskArtifactEvent(task_id=task_id, artifact=assembled)


class V03Codec(JsonRpcCodec):
    """A2A 0.3 JSON-RPC framing and decoding (no version header)."""

    dialect = DIALECT
    methods = METHODS
    shape = SHAPE
    decoder = V03StreamDecoder

    def send_params(self, message: Message, task_id: str | None) -> dict[str, Any]:
        return {"message": message_to_wire(message, task_id), "configuration": {"blocking": False}}

    def send_result(self, call: Call, payload: Any) -> str:
        result = require_dict(payload, "a message/send result", **call.where)
        if result.get("kind") == "message":
            if isinstance(result.get("taskId"), str) and result["taskId"]:
                return result["taskId"]
            raise errors.ProtocolViolationError(
                "agent answered with a message and no task: this operator follows tasks, and the agent "
                "completed the exchange without one", **call.where)
        return require_str(result, "id", "a task", **call.where)


class A2AV03Client(A2AClient):
    """Synchronous client of the ``a2a-0.3`` dialect."""

    codec = V03Codec()


class AsyncA2AV03Client(AsyncA2AClient):
    """Asynchronous client of the ``a2a-0.3`` dialect."""

    codec = V03Codec()
