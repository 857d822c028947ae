"""
What the official A2A dialects share: error mapping, normalisation into our models, and the I/O.

Each dialect module (:mod:`a2a_v03`, :mod:`a2a_v10`, :mod:`a2a_rest`) provides a *codec*: pure functions
that build the HTTP call for an operation and decode what came back (plain answers and stream events)
into :mod:`~airflow_agentvault.protocol.models`. The codec does no I/O, so the sync client here
(requests + sseclient-py) and the async one (httpx + httpx-sse) decode the same bytes the same way,
as the AgentVault pair shares :mod:`~airflow_agentvault.protocol.jsonrpc` and
:mod:`~airflow_agentvault.protocol.events`. The clients subclass the AgentVault clients to reuse their
request plumbing (timeouts, TLS, auth headers, error mapping of connection failures) and keep their
interface, so operators, followers and triggers cannot tell which dialect they hold.

Decisions that hold for every A2A dialect:

* States normalise into :class:`~airflow_agentvault.protocol.models.TaskState`; ``unknown`` and
  ``TASK_STATE_UNSPECIFIED`` become ``UNKNOWN``; ``rejected`` and ``auth-required`` keep their meaning.
* Roles: ``user`` stays ``user``; the agent's role becomes ``assistant``.
* A task's status message (where A2A agents put their question or failure reason) is added to the
  task's messages unless its ``messageId`` is already in the history, so the outcome table finds the
  agent's words after polling as well as after streaming.
* Artifact chunks (``append`` / ``lastChunk``) are reassembled per ``artifactId``: every artifact event
  carries the artifact as assembled so far, and ``tasks/get`` answers normalise to the same artifact.
  Its ``content`` is the joined text when every part is text, the data object of a single data part,
  otherwise the list of parts; a single file part becomes ``url``.
* Subscribing to a task that has no stream any more (UnsupportedOperation -32004, or a 0.3 SDK's
  -32602 "is in terminal state") raises :class:`StreamUnavailableError`, a
  :class:`~airflow_agentvault.protocol.errors.StreamDisconnectedError`: the followers never retry a
  disconnect, they go straight to polling with ``get``, whose first call is immediate.
  A subscription answered "Task not found" (a2a-sdk 0.3.x says so once a task's executor returned, e.g.
  in input-required) is checked with one ``get``: a task that exists and ends the wait also raises
  :class:`StreamUnavailableError`; otherwise the retryable TaskNotFoundError stands.
* Subscription errors are recognised as plain JSON answers and as an error object inside the event
  stream; keep-alive comment lines (``: ping``) carry no data and are skipped.
* A stream stops after the first status that ends the wait (terminal, input-required, auth-required),
  including a resubscribe's first event: the snapshot of a task already waiting for input.
* TaskNotCancelable (-32002) on ``cancel`` is ``CancelResult(success=False)``, as AgentVault answers
  a cancel of a finished task.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests
import sseclient
from httpx_sse import EventSource

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentVaultClient
from airflow_agentvault.protocol.client import AgentVaultClient
from airflow_agentvault.protocol.jsonrpc import build_request, is_event_stream, is_json, raise_for_http_status
from airflow_agentvault.protocol.models import (
    AgentCard,
    Artifact,
    CancelResult,
    DataPart,
    FilePart,
    Message,
    Task,
    TaskEvent,
    TaskState,
    TaskStatusEvent,
    TextPart,
)

#: The A2A version header (1.0 servers refuse calls without it with -32009).
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


class StreamUnavailableError(errors.StreamDisconnectedError):
    """
    The agent offers no stream for this task (A2A UnsupportedOperation -32004: it already finished).

    A :class:`StreamDisconnectedError`, so the followers do not retry the subscription but read the
    task with ``get`` at once; nothing is lost, because the result always comes from ``get``.
    """


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
                   **where: Any) -> Any:
    """The ``result`` of a JSON-RPC answer, or the typed error it (or its HTTP status) stands for."""
    if status in (401, 403):
        raise_for_http_status(status, **where)
    if is_json(content_type):
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            envelope = None
        if isinstance(envelope, dict) and envelope.get("error") is not None:
            raise jsonrpc_error(envelope["error"], subscribing=subscribing, **where)
    raise_for_http_status(status, **where)
    envelope = _json_body(content_type, body, where)
    if not isinstance(envelope, dict):
        raise errors.ProtocolViolationError("JSON-RPC answer is not an object", **where)
    if "result" not in envelope:
        raise errors.ProtocolViolationError("JSON-RPC answer has neither 'result' nor 'error'", **where)
    return envelope["result"]


def decode_rest(status: int, content_type: str | None, body: bytes, *, subscribing: bool = False,
                **where: Any) -> Any:
    """The JSON body of an HTTP+JSON answer, or the typed error it (or its HTTP status) stands for."""
    if status in (401, 403):
        raise_for_http_status(status, **where)
    if status >= 300 and is_json(content_type):
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            raise rest_error(payload["error"], status, subscribing=subscribing, **where)
    raise_for_http_status(status, **where)
    return _json_body(content_type, body, where)


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


@dataclass
class ArtifactAssembler:
    """Reassembles A2A artifact chunks per ``artifactId`` (``append: true`` adds parts to the last ones)."""

    _artifacts: dict[str, _Chunks] = field(default_factory=dict)

    def add(self, artifact_id: str, name: str | None, parts: list[Any], *, append: bool, metadata: Any = None,
            description: str | None = None) -> Artifact:
        known = self._artifacts.get(artifact_id)
        if append and known is not None:
            known.parts.extend(parts)
            known.name = known.name or name
            if isinstance(metadata, dict):
                known.metadata = {**(known.metadata or {}), **metadata}
        else:
            known = self._artifacts[artifact_id] = _Chunks(name, list(parts), metadata, description)
        return artifact_from_parts(artifact_id, known.name, known.parts, known.metadata, known.description)


def task_from(identifier: str, state: TaskState, *, timestamp: Any,
              history: list[tuple[str | None, Message | None]], status_message: tuple[str | None, Message | None],
              artifacts: list[Artifact], metadata: Any, where: dict[str, Any]) -> Task:
    """A normalised Task; the status message joins the messages unless the history already holds it."""
    seen = {message_id for message_id, _ in history if message_id}
    messages = [m for _, m in history if m is not None]
    status_id, status_msg = status_message
    if status_msg is not None and (not status_id or status_id not in seen):
        messages.append(status_msg)
    data = {"id": identifier, "state": state, "updated_at": timestamp, "messages": messages, "artifacts": artifacts,
            "metadata": metadata if isinstance(metadata, dict) and metadata else None}
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
        )


def status_event(task_id: str, state: TaskState, timestamp: Any, message: Message | None) -> TaskStatusEvent:
    text = message.text if message is not None else None
    return TaskStatusEvent(task_id=task_id, state=state, timestamp=timestamp or None, message=text or None)


# -- the codec interface and the generic clients --------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP exchange of an operation, as a codec builds it."""

    op: str  # the protocol's name for it, quoted in errors (e.g. "tasks/get", "GetTask", "GET /tasks/{id}")
    http_method: str
    url: str
    endpoint: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    task_id: str | None = None

    @property
    def where(self) -> dict[str, Any]:
        return {"agent_url": self.endpoint, "method": self.op, "task_id": self.task_id}


class StreamDecoder:
    """Turns the ``data`` of one SSE event into our events; keeps the artifact chunks of one stream."""

    def feed(self, data: str) -> list[TaskEvent]:  # pragma: no cover - interface
        raise NotImplementedError


class Codec:
    """The wire format of one dialect, without I/O. Subclasses implement every method."""

    dialect = ""

    def send_call(self, endpoint: str, message: Message, task_id: str | None) -> Call:
        raise NotImplementedError

    def get_call(self, endpoint: str, task_id: str) -> Call:
        raise NotImplementedError

    def cancel_call(self, endpoint: str, task_id: str) -> Call:
        raise NotImplementedError

    def subscribe_call(self, endpoint: str, task_id: str) -> Call:
        raise NotImplementedError

    def answer(self, call: Call, status: int, content_type: str | None, body: bytes, *,
               subscribing: bool = False) -> Any:
        """The payload of a plain answer, or raise the typed error it carries."""
        raise NotImplementedError

    def send_result(self, call: Call, payload: Any) -> str:
        raise NotImplementedError

    def task_result(self, call: Call, payload: Any) -> Task:
        raise NotImplementedError

    def cancel_result(self, call: Call, payload: Any) -> CancelResult:
        task = self.task_result(call, payload)
        return CancelResult(success=True, message=f"task is {task.state.value}")

    def cancel_refused(self, call: Call, exc: errors.AgentVaultError) -> CancelResult | None:
        """TaskNotCancelable: the task already ended; answered like AgentVault's ``success: false``."""
        if exc.code == TASK_NOT_CANCELABLE:
            return CancelResult(success=False, message=exc.detail)
        return None

    def stream_decoder(self, call: Call) -> StreamDecoder:
        raise NotImplementedError

    def card(self, raw: dict[str, Any], card_url: str) -> AgentCard:
        from airflow_agentvault.protocol.dialects.discovery import agent_card_from

        return agent_card_from(raw, card_url, dialect=self.dialect)


class JsonRpcCodec(Codec):
    """
    The A2A JSON-RPC dialects: one framing, told apart by their data.

    Subclasses name their ``methods`` (operation -> JSON-RPC method), ``headers``, wire ``shape``,
    ``decoder`` class and how a send's params are built and its result read.
    """

    methods: dict[str, str] = {}
    headers: dict[str, str] = {}
    shape: WireShape
    decoder: type[StreamDecoder]

    def send_params(self, message: Message, task_id: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def send_result(self, call: Call, payload: Any) -> str:
        raise NotImplementedError

    def _call(self, op: str, endpoint: str, params: dict[str, Any], task_id: str | None) -> Call:
        method = self.methods[op]
        return Call(method, "POST", endpoint, endpoint, build_request(method, params), dict(self.headers), task_id)

    def send_call(self, endpoint: str, message: Message, task_id: str | None) -> Call:
        return self._call("send", endpoint, self.send_params(message, task_id), task_id)

    def get_call(self, endpoint: str, task_id: str) -> Call:
        return self._call("get", endpoint, {"id": task_id}, task_id)

    def cancel_call(self, endpoint: str, task_id: str) -> Call:
        return self._call("cancel", endpoint, {"id": task_id}, task_id)

    def subscribe_call(self, endpoint: str, task_id: str) -> Call:
        return self._call("subscribe", endpoint, {"id": task_id}, task_id)

    def answer(self, call: Call, status: int, content_type: str | None, body: bytes, *,
               subscribing: bool = False) -> Any:
        return decode_jsonrpc(status, content_type, body, subscribing=subscribing, **call.where)

    def task_result(self, call: Call, payload: Any) -> Task:
        return self.shape.task(payload, **call.where)

    def stream_decoder(self, call: Call) -> StreamDecoder:
        return self.decoder(call)


def _card_json(body: bytes, where: dict[str, Any]) -> dict[str, Any]:
    """A card's JSON, whatever its content type (static servers label cards loosely, as AgentVault's client allows)."""
    try:
        return require_dict(json.loads(body), "an agent card", **where)
    except (ValueError, UnicodeDecodeError):
        raise errors.ProtocolViolationError("agent card is not valid JSON", **where) from None


def _no_stream_or(exc: errors.TaskNotFoundError, task: Task | None) -> errors.AgentVaultError:
    """
    "Task not found" on a subscription, yet ``get`` finds the task stopped: the agent just has no stream.

    a2a-sdk 0.3.x answers -32001 to ``tasks/resubscribe`` once the task's executor has returned (a task
    waiting in input-required, say). Raised as :class:`StreamUnavailableError` so the follower reads the
    task at once instead of retrying; a task that ``get`` cannot find (or that still runs: a race with
    its creation) keeps the retryable TaskNotFoundError.
    """
    if task is None or not task.state.ends_wait:
        return exc
    return StreamUnavailableError(
        f"agent has no stream for this task ({exc.detail}, yet get finds it {task.state.value}); "
        "reading it with get instead",
        agent_url=exc.agent_url, method=exc.method, task_id=exc.task_id, code=exc.code, data=exc.data,
    )


def _stream_refused(codec: Codec, call: Call, status: int, content_type: str | None, body: bytes) -> None:
    """A subscription answered without a stream: raise what the answer says (never an empty stream)."""
    payload = codec.answer(call, status, content_type, body, subscribing=True)  # raises the carried error
    raise errors.ProtocolViolationError(
        f"subscription answered a JSON result instead of a stream: {json.dumps(payload)[:200]}", **call.where
    )


class A2AClient(AgentVaultClient):
    """The synchronous client of an A2A dialect: the AgentVault client's interface over ``codec``."""

    codec: Codec = Codec()

    @property
    def dialect(self) -> str:
        return self.codec.dialect

    def send(self, message: Message, *, task_id: str | None = None) -> str:
        call = self.codec.send_call(self.rpc_url, message, task_id)
        return self.codec.send_result(call, self._exchange(call))

    def get(self, task_id: str) -> Task:
        call = self.codec.get_call(self.rpc_url, task_id)
        return self.codec.task_result(call, self._exchange(call))

    def cancel(self, task_id: str) -> CancelResult:
        call = self.codec.cancel_call(self.rpc_url, task_id)
        try:
            payload = self._exchange(call)
        except errors.AgentVaultError as exc:
            refused = self.codec.cancel_refused(call, exc)
            if refused is None:
                raise
            return refused
        return self.codec.cancel_result(call, payload)

    def fetch_card(self, card_url: str) -> AgentCard:
        where = {"agent_url": card_url, "method": "GET agent card"}
        response = self._request("GET", card_url, where=where)
        raise_for_http_status(response.status_code, agent_url=card_url, method="GET agent card", task_id=None)
        return self.codec.card(_card_json(response.content, where), card_url)

    def subscribe(self, task_id: str, *, read_timeout: float | None = None) -> Iterator[TaskEvent]:
        """Yield the task's events until a state that ends the wait; see the module doc for the errors."""
        try:
            yield from self._subscribe(task_id, read_timeout)
        except errors.TaskNotFoundError as exc:
            raise _no_stream_or(exc, self._peek(task_id)) from None

    def _peek(self, task_id: str) -> Task | None:
        try:
            return self.get(task_id)
        except errors.AgentVaultError:
            return None

    def _subscribe(self, task_id: str, read_timeout: float | None) -> Iterator[TaskEvent]:
        call = self.codec.subscribe_call(self.rpc_url, task_id)
        where = call.where
        response = self._request(call.http_method, call.url, where=where, json=call.body,
                                 headers={**call.headers, "Accept": "text/event-stream"}, stream=True,
                                 read_timeout=read_timeout)
        with response:
            content_type = response.headers.get("Content-Type")
            if response.status_code >= 300 or not is_event_stream(content_type):
                _stream_refused(self.codec, call, response.status_code, content_type, response.content)
            decoder = self.codec.stream_decoder(call)
            count = 0
            try:
                for sse in sseclient.SSEClient(response).events():
                    if not sse.data:  # keep-alive comments (": ping") carry no data
                        continue
                    for event in decoder.feed(sse.data):
                        count += 1
                        yield event
                        if isinstance(event, TaskStatusEvent) and event.state.ends_wait:
                            return
            except requests.RequestException as exc:
                raise errors.StreamDisconnectedError(
                    f"stream broke after {count} events ({type(exc).__name__})", **where
                ) from None
            raise errors.StreamDisconnectedError(f"stream ended after {count} events without a terminal state",
                                                 **where)

    def _exchange(self, call: Call) -> Any:
        response = self._request(call.http_method, call.url, where=call.where, json=call.body, headers=call.headers)
        return self.codec.answer(call, response.status_code, response.headers.get("Content-Type"), response.content)


class AsyncA2AClient(AsyncAgentVaultClient):
    """The asynchronous client of an A2A dialect: :class:`A2AClient` with awaited I/O, same codec."""

    codec: Codec = Codec()

    @property
    def dialect(self) -> str:
        return self.codec.dialect

    async def send(self, message: Message, *, task_id: str | None = None) -> str:
        call = self.codec.send_call(self.rpc_url, message, task_id)
        return self.codec.send_result(call, await self._exchange(call))

    async def get(self, task_id: str) -> Task:
        call = self.codec.get_call(self.rpc_url, task_id)
        return self.codec.task_result(call, await self._exchange(call))

    async def cancel(self, task_id: str) -> CancelResult:
        call = self.codec.cancel_call(self.rpc_url, task_id)
        try:
            payload = await self._exchange(call)
        except errors.AgentVaultError as exc:
            refused = self.codec.cancel_refused(call, exc)
            if refused is None:
                raise
            return refused
        return self.codec.cancel_result(call, payload)

    async def fetch_card(self, card_url: str) -> AgentCard:
        where = {"agent_url": card_url, "method": "GET agent card"}
        response = await self._request("GET", card_url, where=where)
        raise_for_http_status(response.status_code, agent_url=card_url, method="GET agent card", task_id=None)
        return self.codec.card(_card_json(response.content, where), card_url)

    async def subscribe(self, task_id: str, *, read_timeout: float | None = None) -> AsyncIterator[TaskEvent]:
        """Yield the task's events until a state that ends the wait; see the module doc for the errors."""
        events = self._subscribe(task_id, read_timeout)
        try:
            async for event in events:
                yield event
        except errors.TaskNotFoundError as exc:
            raise _no_stream_or(exc, await self._peek(task_id)) from None
        finally:
            await events.aclose()

    async def _peek(self, task_id: str) -> Task | None:
        try:
            return await self.get(task_id)
        except errors.AgentVaultError:
            return None

    async def _subscribe(self, task_id: str, read_timeout: float | None) -> AsyncIterator[TaskEvent]:
        call = self.codec.subscribe_call(self.rpc_url, task_id)
        where = call.where
        response = await self._request(call.http_method, call.url, where=where, json=call.body,
                                       headers={**call.headers, "Accept": "text/event-stream"}, stream=True,
                                       read_timeout=read_timeout)
        try:
            content_type = response.headers.get("Content-Type")
            if response.status_code >= 300 or not is_event_stream(content_type):
                body = await self._read_body(response, where)
                _stream_refused(self.codec, call, response.status_code, content_type, body)
            decoder = self.codec.stream_decoder(call)
            count = 0
            try:
                async for sse in EventSource(response).aiter_sse():
                    if not sse.data:  # keep-alive comments (": ping") carry no data
                        continue
                    for event in decoder.feed(sse.data):
                        count += 1
                        yield event
                        if isinstance(event, TaskStatusEvent) and event.state.ends_wait:
                            return
            except (httpx.HTTPError, httpx.StreamError) as exc:
                raise errors.StreamDisconnectedError(
                    f"stream broke after {count} events ({type(exc).__name__})", **where
                ) from None
            raise errors.StreamDisconnectedError(f"stream ended after {count} events without a terminal state",
                                                 **where)
        finally:
            await response.aclose()

    async def _exchange(self, call: Call) -> Any:
        response = await self._request(call.http_method, call.url, where=call.where, json=call.body,
                                       headers=call.headers)
        return self.codec.answer(call, response.status_code, response.headers.get("Content-Type"), response.content)
