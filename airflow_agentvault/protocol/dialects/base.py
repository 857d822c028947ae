"""
What the official A2A dialects share: normalisation into our models and the A2A codec base.

Each dialect module (:mod:`a2a_v03`, :mod:`a2a_v10`, :mod:`a2a_rest`) is a codec (:mod:`..codec`): pure
functions that build the request of an operation and decode what came back. Errors are decided in
:mod:`a2a_errors`. Decisions that hold for every A2A dialect:

* States normalise into :class:`~airflow_agentvault.protocol.models.TaskState`; ``unknown`` and
  ``TASK_STATE_UNSPECIFIED`` become ``UNKNOWN``; ``rejected`` and ``auth-required`` keep their meaning.
* Roles: ``user`` stays ``user``; the agent's role becomes ``assistant``.
* A task's status message (where A2A agents put their question or failure reason) is added to the
  task's messages unless its ``messageId`` is already in the history, so the outcome table finds the
  agent's words after polling as well as after streaming.
* Artifact chunks (``append`` / ``lastChunk``) are reassembled per ``artifactId``: every artifact event
  carries the artifact as assembled so far, and ``get`` answers normalise to the same artifact.
  Its ``content`` is the joined text when every part is text, the data object of a single data part,
  otherwise the list of parts; a single file part becomes ``url``.
* A stream event whose JSON-RPC ``result`` (or REST object) is of a kind we do not know is skipped
  (:class:`~airflow_agentvault.protocol.codec.UnknownEvent`); an error object inside the stream is
  raised as its typed error.
* TaskNotCancelable (-32002) on ``cancel`` is ``CancelResult(success=False)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.codec import Codec, StreamDecoder, UnknownEvent
from airflow_agentvault.protocol.dialects.a2a_errors import (
    TASK_NOT_CANCELABLE,
    VERSION_HEADER,
    decode_jsonrpc,
    jsonrpc_error,
)
from airflow_agentvault.protocol.dialects.cards import agent_card_from
from airflow_agentvault.protocol.exchange import Request, ServerEvent
from airflow_agentvault.protocol.jsonrpc import build_request
from airflow_agentvault.protocol.models import (
    AgentCard,
    Artifact,
    CancelResult,
    DataPart,
    FilePart,
    Message,
    Task,
    TaskArtifactEvent,
    TaskEvent,
    TaskMessageEvent,
    TaskState,
    TaskStatusEvent,
    TextPart,
)

__all__ = ["VERSION_HEADER"]

# -- normalisation -----------------------------------------------------------------------------------


def require_dict(value: Any, what: str, **where: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.ProtocolViolationError(f"agent sent {what} that is not an object: {value!r:.200}", **where)
    return value


def require_str(obj: dict[str, Any], key: str, what: str, **where: Any) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise errors.ProtocolViolationError(f"agent sent {what} without field '{key}'", **where)
    return value


def state_from(value: Any, table: dict[str, TaskState], **where: Any) -> TaskState:
    if isinstance(value, str) and value in table:
        return table[value]
    raise errors.ProtocolViolationError(f"agent sent an unknown task state {value!r:.80}", **where)


def data_part(data: Any, media_type: str | None = None, metadata: Any = None) -> DataPart:
    content = data if isinstance(data, dict) else {"value": data}
    return DataPart(content=content, media_type=media_type or "application/json", metadata=metadata)


def file_part(url: str | None, raw: str | None, media_type: str | None, filename: str | None,
              metadata: Any = None) -> FilePart:
    if not url:
        url = f"data:{media_type or 'application/octet-stream'};base64,{raw or ''}"
    return FilePart(url=url, media_type=media_type, filename=filename, metadata=metadata)


def artifact_from_parts(artifact_id: str, name: str | None, parts: list[Any], metadata: Any = None,
                        description: str | None = None) -> Artifact:
    """One normalised Artifact from A2A artifact fields and already-normalised parts."""
    extra = dict(metadata) if isinstance(metadata, dict) else {}
    if description:
        extra.setdefault("description", description)
    content: Any = None
    url = media_type = None
    if parts and all(isinstance(p, TextPart) for p in parts):
        content, media_type = "".join(p.content for p in parts), "text/plain"
    elif len(parts) == 1 and isinstance(parts[0], DataPart):
        content, media_type = parts[0].content, parts[0].media_type or "application/json"
    elif len(parts) == 1 and isinstance(parts[0], FilePart):
        url, media_type = parts[0].url, parts[0].media_type
        if parts[0].filename:
            extra.setdefault("filename", parts[0].filename)
    elif parts:
        content = [p.to_wire() for p in parts]
    return Artifact(id=artifact_id, type=name or "artifact", content=content, url=url, media_type=media_type,
                    metadata=extra or None)


@dataclass
class _Chunks:
    name: str | None
    parts: list[Any]
    metadata: Any = None
    description: str | None = None
    size: int = 0  # bytes of the events that carried the parts


@dataclass
class ArtifactAssembler:
    """Reassembles A2A artifact chunks per ``artifactId`` (``append: true`` adds parts to the last ones)."""

    _artifacts: dict[str, _Chunks] = field(default_factory=dict)

    def add(self, artifact_id: str, name: str | None, parts: list[Any], *, append: bool, metadata: Any = None,
            description: str | None = None, size: int = 0) -> Artifact:
        known = self._artifacts.get(artifact_id)
        if append and known is not None:
            known.size += size
            known.parts.extend(parts)
            known.name = known.name or name
            if isinstance(metadata, dict):
                known.metadata = {**(known.metadata or {}), **metadata}
        else:
            known = self._artifacts[artifact_id] = _Chunks(name, list(parts), metadata, description, size)
        return artifact_from_parts(artifact_id, known.name, known.parts, known.metadata, known.description)

    def size(self, artifact_id: str) -> int:
        known = self._artifacts.get(artifact_id)
        return known.size if known is not None else 0


def task_from(identifier: str, state: TaskState, *, timestamp: Any,
              history: list[tuple[str | None, Message | None]], status_message: tuple[str | None, Message | None],
              artifacts: list[Artifact], metadata: Any, where: dict[str, Any], context_id: Any = None) -> Task:
    """A normalised Task; the status message joins the messages unless the history already holds it."""
    seen = {message_id for message_id, _ in history if message_id}
    messages = [m for _, m in history if m is not None]
    status_id, status_msg = status_message
    if status_msg is not None and (not status_id or status_id not in seen):
        messages.append(status_msg)
    data = {"id": identifier, "state": state, "updated_at": timestamp, "messages": messages, "artifacts": artifacts,
            "metadata": metadata if isinstance(metadata, dict) and metadata else None,
            "context_id": context_id if isinstance(context_id, str) and context_id else None}
    try:
        return Task(**data)
    except ValueError as exc:
        raise errors.ProtocolViolationError(f"agent sent an invalid task ({exc.__class__.__name__}: "
                                            f"{str(exc).splitlines()[0]})", **where) from None



@dataclass(frozen=True)
class WireShape:
    """How one A2A version spells parts, roles and states; the rest of a task's shape is common."""

    part_from_wire: Callable[..., Any]
    user_role: str
    states: dict[str, TaskState]

    def message(self, message: Any, **where: Any) -> tuple[str | None, Message | None]:
        """(messageId, Message); the Message is None when the agent sent no parts."""
        if message is None:
            return None, None
        message = require_dict(message, "a message", **where)
        parts = [self.part_from_wire(p, **where) for p in message.get("parts") or []]
        role = "user" if message.get("role") == self.user_role else "assistant"
        normalised = Message(role=role, parts=parts, metadata=message.get("metadata")) if parts else None
        return message.get("messageId"), normalised

    def artifact_parts(self, artifact: dict[str, Any], **where: Any) -> list[Any]:
        return [self.part_from_wire(p, **where) for p in artifact.get("parts") or []]

    def task(self, task: Any, **where: Any) -> Task:
        task = require_dict(task, "a task", **where)
        task_id = require_str(task, "id", "a task", **where)
        status = require_dict(task.get("status"), "a task status", **where)
        artifacts = []
        for artifact in task.get("artifacts") or []:
            artifact = require_dict(artifact, "an artifact", **where)
            artifacts.append(artifact_from_parts(require_str(artifact, "artifactId", "an artifact", **where),
                                                 artifact.get("name"), self.artifact_parts(artifact, **where),
                                                 artifact.get("metadata"), artifact.get("description")))
        return task_from(
            task_id,
            state_from(status.get("state"), self.states, **where),
            timestamp=status.get("timestamp"),
            history=[self.message(m, **where) for m in task.get("history") or []],
            status_message=self.message(status.get("message"), **where),
            artifacts=artifacts,
            metadata=task.get("metadata"),
            where=where,
            context_id=task.get("contextId"),
        )


def status_event(task_id: str, state: TaskState, timestamp: Any, message: Message | None) -> TaskStatusEvent:
    text = message.text if message is not None else None
    return TaskStatusEvent(task_id=task_id, state=state, timestamp=timestamp or None, message=text or None)


# -- streams ------------------------------------------------------------------------------------------------


class A2AStreamDecoder(StreamDecoder):
    """
    One A2A stream: JSON per event, an error object raised as its typed error, chunks reassembled.

    ``enveloped``: JSON-RPC envelopes, or the bare objects of HTTP+JSON. Subclasses read one result
    (:meth:`events_of`) in their version's shape.
    """

    shape: WireShape

    def __init__(self, request: Request, *, enveloped: bool = True,
                 error: Callable[..., errors.AgentVaultError] | None = None) -> None:
        self.request = request
        self.enveloped = enveloped
        self.error = error or (lambda obj, **where: jsonrpc_error(obj, subscribing=True, **where))
        self.artifacts = ArtifactAssembler()
        self._event_size = 0  # the size of the event being read, for the artifact size limit

    def feed(self, event: ServerEvent) -> list[TaskEvent]:
        where = self.request.where
        self._event_size = len(event.data)
        if event.event not in (None, "", "message"):  # A2A streams name no events: one named is someone else's
            raise UnknownEvent(f"event type '{event.event}'")
        try:
            payload = json.loads(event.data)
        except ValueError as exc:
            raise errors.ProtocolViolationError(f"stream event carries malformed JSON ({exc})", **where) from None
        payload = require_dict(payload, "a stream event", **where)
        if payload.get("error") is not None:
            raise self.error(payload["error"], **where)
        if self.enveloped:
            if "result" not in payload:
                raise errors.ProtocolViolationError("stream event has neither 'result' nor 'error'", **where)
            payload = require_dict(payload["result"], "a stream result", **where)
        return self.events_of(payload)

    def events_of(self, result: dict[str, Any]) -> list[TaskEvent]:
        raise NotImplementedError

    def snapshot(self, raw: dict[str, Any]) -> list[TaskEvent]:
        """A task snapshot (a stream's first event) read as its artifacts, then its status."""
        where = self.request.where
        task = self.shape.task(raw, **where)
        events: list[TaskEvent] = [self.artifact(task.id, a, append=False) for a in raw.get("artifacts") or []]
        status = require_dict(raw.get("status"), "a task status", **where)
        _, message = self.shape.message(status.get("message"), **where)
        events.append(status_event(task.id, task.state, status.get("timestamp"), message))
        return events

    def task_id_of(self, named: Any) -> str:
        """The task an event names, else the one subscribed to."""
        return str(named or self.request.task_id or "")

    def status(self, task_id: str, status: Any) -> TaskStatusEvent:
        where = self.request.where
        status = require_dict(status, "a task status", **where)
        _, message = self.shape.message(status.get("message"), **where)
        return status_event(task_id, state_from(status.get("state"), self.shape.states, **where),
                            status.get("timestamp"), message)

    def message(self, task_id: str, raw: Any) -> list[TaskEvent]:
        _, message = self.shape.message(raw, **self.request.where)
        return [TaskMessageEvent(task_id=task_id, message=message)] if message is not None else []

    def artifact(self, task_id: str, artifact: Any, *, append: bool) -> TaskArtifactEvent:
        where = self.request.where
        artifact = require_dict(artifact, "an artifact", **where)
        artifact_id = require_str(artifact, "artifactId", "an artifact", **where)
        assembled = self.artifacts.add(
            artifact_id, artifact.get("name"),
            self.shape.artifact_parts(artifact, **where), append=append, metadata=artifact.get("metadata"),
            description=artifact.get("description"), size=self._event_size,
        )
        if self.artifacts.size(artifact_id) > self.max_bytes:  # chunks without end must not fill memory
            raise errors.EventTooLargeError(
                f"artifact {artifact_id} grew past {self.max_bytes} bytes of chunks (see max_answer_bytes); "
                "reading the task with get instead", **where)
        return TaskArtifactEvent(task_id=task_id, artifact=assembled)


def tasks_of(payload: Any, shape: WireShape, request: Request) -> list[Task]:
    """The tasks of a ``ListTasksResponse``."""
    listed = require_dict(payload, "a task list", **request.where).get("tasks") or []
    return [shape.task(task, **request.where) for task in listed]


# -- the codec base of every A2A dialect ------------------------------------------------------------------


class A2ACodec(Codec):
    """What every A2A binding shares: cancel refusals, cards, the 404 hint."""

    not_found_hint = ("check the connection's URL: A2A agents are found from their base URL with the dialect auto "
                      "(their card names the endpoint)")

    def cancel_refused(self, request: Request, exc: errors.AgentVaultError) -> CancelResult | None:
        """TaskNotCancelable: the task already ended; answered like AgentVault's ``success: false``."""
        if exc.code == TASK_NOT_CANCELABLE:
            return CancelResult(success=False, message=exc.detail)
        return None

    def card(self, raw: dict[str, Any], card_url: str) -> AgentCard:
        return agent_card_from(raw, card_url, dialect=self.dialect)


class JsonRpcCodec(A2ACodec):
    """
    The A2A JSON-RPC dialects: one framing, told apart by their data.

    Subclasses name their ``methods`` (operation -> JSON-RPC method), ``headers``, wire ``shape``,
    ``decoder`` class and how a send's params are built and its result read.
    """

    methods: dict[str, str] = {}
    shape: WireShape
    decoder: type[StreamDecoder]

    def send_params(self, message: Message, task_id: str | None, context_id: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def push_params(self, task_id: str, config_id: str, url: str, token: str) -> dict[str, Any]:
        raise NotImplementedError

    def push_delete_params(self, task_id: str, config_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def push_register_request(self, endpoint: str, task_id: str, config_id: str, url: str,
                              token: str) -> Request | None:
        return self._request("push_set", endpoint, self.push_params(task_id, config_id, url, token), task_id)

    def push_delete_request(self, endpoint: str, task_id: str, config_id: str) -> Request | None:
        return self._request("push_delete", endpoint, self.push_delete_params(task_id, config_id), task_id)

    def _request(self, op: str, endpoint: str, params: dict[str, Any], task_id: str | None) -> Request:
        method = self.methods[op]
        return Request(method, "POST", endpoint, endpoint, build_request(method, params), dict(self.headers), task_id,
                       starts_task=op == "send")

    def send_request(self, endpoint: str, message: Message, task_id: str | None,
                     context_id: str | None = None) -> Request:
        return self._request("send", endpoint, self.send_params(message, task_id, context_id), task_id)

    def list_request(self, endpoint: str, context_id: str) -> Request | None:
        if "list" not in self.methods:
            return None
        return self._request("list", endpoint, {"contextId": context_id, "pageSize": 10}, None)

    def list_result(self, request: Request, payload: Any) -> list[Task]:
        return tasks_of(payload, self.shape, request)

    def get_request(self, endpoint: str, task_id: str) -> Request:
        return self._request("get", endpoint, {"id": task_id}, task_id)

    def cancel_request(self, endpoint: str, task_id: str) -> Request:
        return self._request("cancel", endpoint, {"id": task_id}, task_id)

    def subscribe_request(self, endpoint: str, task_id: str) -> Request:
        return self._request("subscribe", endpoint, {"id": task_id}, task_id)

    def answer(self, request: Request, status: int, content_type: str | None, body: bytes, *,
               subscribing: bool = False) -> Any:
        return decode_jsonrpc(status, content_type, body, subscribing=subscribing, hint=self.not_found_hint,
                              **request.where)

    def task_result(self, request: Request, payload: Any) -> Task:
        return self.shape.task(payload, **request.where)

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return self.decoder(request)  # type: ignore[call-arg]  # the A2A decoders take the request
