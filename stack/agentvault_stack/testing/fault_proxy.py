"""A loopback HTTP/1.1 proxy that injects faults on the wire, in front of a real agent (long: one proxy, every fault).

Why: a client's retries, stream resumption and idempotence can only be trusted once it has met the
failures that networks, gateways and agents really produce: streams cut cleanly or with a TCP reset,
stalls, damaged or unknown events, wrong headers, gateway statuses, answers lost after the agent
acted, and agents that forget tasks or show them late. Each fault here happens in the bytes the
client reads, so the client's own HTTP and SSE stack meets it.

How: one asyncio server on 127.0.0.1 in a thread of its own (so sync and async tests can use it).
Each client request is read whole, sent to the upstream on a fresh connection with
``Connection: close``, and the answer is relayed; every answer ends with ``Connection: close``.
Event streams go to the client chunked, one complete event at a time, so a clean end (the
terminating chunk) and a cut differ on the wire; other answers are read whole and sent with a
Content-Length. Faults are :class:`Fault` rules that tests add while the proxy runs; see :func:`cut_after_events`
and the other constructors below.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import re
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

LOOPBACK = "127.0.0.1"
HEAD_LIMIT = 64 * 1024
REQUEST_TIMEOUT = 30.0  # for a client to send its whole request
UPSTREAM_TIMEOUT = 30.0  # for the upstream to send its response head
CAPTURE_TIMEOUT = 5.0  # for reading a discarded answer, to learn the task id it carries
STOP_TIMEOUT = 1.0  # for open exchanges to end once stop() is called

DIALECTS = ("agentvault", "a2a-jsonrpc", "a2a-rest")
TASK_NOT_FOUND = -32001

#: Methods whose answer carries the id of a task the agent may just have created.
SEND_METHODS = frozenset({"tasks/send", "message/send", "message/stream", "SendMessage", "SendStreamingMessage"})
STREAM_METHODS = frozenset(
    {"tasks/sendSubscribe", "tasks/resubscribe", "message/stream", "SendStreamingMessage", "SubscribeToTask"}
)
SEND_PATH = re.compile(r"/message:(send|stream)$")
STREAM_PATH = re.compile(r":(stream|subscribe)$")
TASK_PATH = re.compile(r"/tasks/([^/:?]+)")

# Headers that describe one connection or one framing; the proxy sets its own.
_NOT_FORWARDED = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "content-length", "expect", "accept-encoding",
    }
)
# The blank line ending an SSE event, whatever line ends the server uses (a lone CR is one too).
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE_END = re.compile(rb"\r\n|\r|\n")


# -- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Which requests a fault is for; every criterion given must hold (none given: every request).

    ``stream`` is whether the answer is an event stream: read from the response's Content-Type for
    faults that act on the response, guessed from the request (Accept header, method, path) for
    faults that act before the upstream is asked.
    """

    rpc_method: str | Collection[str] | None = None
    path: str | None = None  # regular expression, searched in the request path (no query)
    http_method: str | None = None
    stream: bool | None = None

    def matches(self, request: Request, stream: bool) -> bool:
        if self.rpc_method is not None:
            wanted = {self.rpc_method} if isinstance(self.rpc_method, str) else set(self.rpc_method)
            if request.rpc_method not in wanted:
                return False
        if self.path is not None and not re.search(self.path, request.path):
            return False
        if self.http_method is not None and request.method.upper() != self.http_method.upper():
            return False
        return self.stream is None or self.stream == stream


#: Every fault kind and its parameters with their defaults.
KINDS: dict[str, dict[str, Any]] = {
    "latency": {"seconds": 0.0},
    "forget_tasks": {},
    "status": {"code": 503, "body": None, "content_type": "text/plain", "headers": None, "retry_after": None},
    "reset_before_request": {},
    "delay_visibility": {"count": None, "seconds": None},
    "status_after_upstream": {"code": 502, "body": None, "content_type": "text/plain", "headers": None},
    "reset_after_request": {},
    "wrong_content_type": {"value": "application/json"},
    "stall": {"seconds": 1.0, "after_events": 0, "head": True},
    "cut_after_events": {"n": 1, "abrupt": False},
    "cut_mid_event": {"n": 0},
    "damage_json": {"n": 1},
    "inject_unknown_event": {"n": 1, "name": "proxy_heartbeat", "data": '{"x":1}'},
}
# Faults decided from the request alone, before the upstream is asked; the first that takes a
# request answers it (latency and forget_tasks add to whatever else happens).
_GATEWAY_KINDS = frozenset({"status", "reset_before_request"})
_ADDITIVE_KINDS = frozenset({"latency", "forget_tasks"})
# Faults decided on the upstream's response head; the first that takes a response applies.
_RESPONSE_KINDS = frozenset(
    {
        "status_after_upstream", "reset_after_request", "wrong_content_type", "stall",
        "cut_after_events", "cut_mid_event", "damage_json", "inject_unknown_event",
    }
)
_STREAM_ONLY_KINDS = frozenset({"cut_after_events", "cut_mid_event", "damage_json", "inject_unknown_event"})


class Fault:
    """One rule: apply ``kind`` to the requests ``when`` matches, skipping the first ``skip`` of them,
    then ``times`` times (``None``: always). For ``delay_visibility``, ``times`` and ``skip`` count
    created tasks instead. Parameters read as attributes (``fault.n``); ``matched`` and ``applied``
    count as the proxy goes."""

    def __init__(
        self, kind: str, when: Match | None = None, times: int | None = 1, skip: int = 0, **params: Any
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        unknown = set(params) - set(KINDS[kind])
        if unknown:
            raise ValueError(f"{kind} takes no {', '.join(sorted(unknown))}")
        self.kind = kind
        self.when = when or Match()
        self.times = times
        self.skip = skip
        self.params: dict[str, Any] = {**KINDS[kind], **params}
        if kind == "delay_visibility" and (self.params["count"] is None) == (self.params["seconds"] is None):
            raise ValueError("delay_visibility needs exactly one of count and seconds")
        self.matched = 0
        self.applied = 0

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Fault({self.kind!r}, when={self.when}, times={self.times}, skip={self.skip}, {self.params})"

    def _take(self) -> bool:
        """Count one match; whether the fault applies to it (the caller holds the proxy's lock)."""
        self.matched += 1
        if self.matched <= self.skip or (self.times is not None and self.applied >= self.times):
            return False
        self.applied += 1
        return True


def latency(seconds: float, **rule: Any) -> Fault:
    """Wait ``seconds`` before forwarding (adds to any other fault)."""
    return Fault("latency", seconds=seconds, **rule)


def cut_after_events(n: int, abrupt: bool = False, **rule: Any) -> Fault:
    """Relay ``n`` complete events, then end: the terminating chunk, or a TCP reset if ``abrupt``."""
    return Fault("cut_after_events", n=n, abrupt=abrupt, **rule)


def cut_mid_event(n: int, **rule: Any) -> Fault:
    """Relay ``n`` complete events and the first half of the next one's bytes, then reset."""
    return Fault("cut_mid_event", n=n, **rule)


def stall(seconds: float, after_events: int = 0, head: bool = True, **rule: Any) -> Fault:
    """Send the head (unless ``head`` is false) and ``after_events`` events, then nothing for
    ``seconds``, then close without ending the body."""
    return Fault("stall", seconds=seconds, after_events=after_events, head=head, **rule)


def damage_json(n: int, **rule: Any) -> Fault:
    """Make the data of the ``n``-th event (1-based) invalid JSON; the SSE framing stays valid."""
    return Fault("damage_json", n=n, **rule)


def inject_unknown_event(n: int, name: str | None = "proxy_heartbeat", data: str = '{"x":1}', **rule: Any) -> Fault:
    """Insert an event before the ``n``-th (1-based): ``event: name`` plus ``data``, or only a
    ``data:`` line when ``name`` is ``None`` (for dialects whose events have no names)."""
    return Fault("inject_unknown_event", n=n, name=name, data=data, **rule)


def wrong_content_type(value: str = "application/json", **rule: Any) -> Fault:
    """Rewrite the response's Content-Type; the body is relayed unchanged."""
    return Fault("wrong_content_type", value=value, **rule)


def status(
    code: int,
    body: bytes | str | None = None,
    content_type: str = "text/plain",
    headers: dict[str, str] | None = None,
    retry_after: float | None = None,
    **rule: Any,
) -> Fault:
    """Answer ``code`` without asking the upstream (a gateway error, a 429 with ``Retry-After``...)."""
    return Fault(
        "status", code=code, body=body, content_type=content_type, headers=headers, retry_after=retry_after, **rule
    )


def status_after_upstream(
    code: int, body: bytes | str | None = None, content_type: str = "text/plain", **rule: Any
) -> Fault:
    """Let the upstream act on the request, drop its answer and answer ``code`` instead."""
    return Fault("status_after_upstream", code=code, body=body, content_type=content_type, **rule)


def reset_before_request(**rule: Any) -> Fault:
    """Read the request, then reset the connection; the upstream never sees it."""
    return Fault("reset_before_request", **rule)


def reset_after_request(**rule: Any) -> Fault:
    """Forward the request, wait for the upstream's answer, then reset the client's connection."""
    return Fault("reset_after_request", **rule)


def forget_tasks(**rule: Any) -> Fault:
    """At the matching request, every task seen so far is forgotten, as after an agent restart."""
    return Fault("forget_tasks", **rule)


def delay_visibility(count: int | None = None, seconds: float | None = None, **rule: Any) -> Fault:
    """A task created through the proxy is "not found" for its first ``count`` lookups (requests that
    name it and that ``when`` matches), or for ``seconds`` after its creation."""
    return Fault("delay_visibility", count=count, seconds=seconds, **rule)


# -- HTTP messages -------------------------------------------------------------------------------


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    return next((value for key, value in headers if key.lower() == name), None)


@dataclass
class Request:
    """A client's whole request, with what the rules look at."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def __post_init__(self) -> None:
        self.path = self.target.split("?", 1)[0]
        self.json: Any = None
        with contextlib.suppress(ValueError):
            self.json = json.loads(self.body) if self.body else None
        rpc = self.json if isinstance(self.json, dict) and "method" in self.json else None
        self.rpc_method: str | None = rpc["method"] if rpc and isinstance(rpc["method"], str) else None
        self.rpc_id: Any = rpc.get("id") if rpc else None
        self.task_id = _named_task_id(self.path, self.json, rpc is not None)
        self.is_send = self.rpc_method in SEND_METHODS or bool(SEND_PATH.search(self.path))
        accept = _header(self.headers, "accept") or ""
        self.wants_stream = (
            "text/event-stream" in accept
            or self.rpc_method in STREAM_METHODS
            or bool(STREAM_PATH.search(self.path))
        )

    def upstream_bytes(self) -> bytes:
        """The request as sent upstream: same target and headers, own framing, ``Connection: close``."""
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in _NOT_FORWARDED]
        if self.body or self.method.upper() in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        lines += ["Accept-Encoding: identity", "Connection: close"]  # identity: faults edit plain bytes
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def _named_task_id(path: str, body: Any, is_rpc: bool) -> str | None:
    """The task a request names: REST path ``/tasks/{id}``, JSON-RPC ``params.id`` / ``taskId`` /
    ``name`` (``tasks/{id}``), or ``message.taskId`` (a follow-up message)."""
    found = TASK_PATH.search(path)
    if found:
        return unquote(found.group(1))
    params = body.get("params") if is_rpc else body
    if not isinstance(params, dict):
        return None
    if is_rpc:
        for key in ("id", "taskId"):
            if isinstance(params.get(key), str):
                return params[key]
        name = params.get("name")
        if isinstance(name, str) and name.startswith("tasks/"):
            return name.split("/")[1]
    message = params.get("message")
    if isinstance(message, dict) and isinstance(message.get("taskId"), str):
        return message["taskId"]
    return None


def _answer_task_id(payload: Any) -> str | None:
    """The task id in a send's answer or stream event: ``result.task.id``, ``result.id`` (a task),
    ``result.taskId`` or ``result.<update>.taskId``; a REST body is read as the result."""
    if not isinstance(payload, dict):
        return None
    result = payload.get("result") if "jsonrpc" in payload else payload
    if not isinstance(result, dict):
        return None
    task = result.get("task")
    if isinstance(task, dict) and isinstance(task.get("id"), str):
        return task["id"]
    if isinstance(result.get("id"), str) and "messageId" not in result:
        return result["id"]
    for part in (result, *[v for v in result.values() if isinstance(v, dict)]):
        if isinstance(part.get("taskId"), str):
            return part["taskId"]
    return None


@dataclass
class Head:
    """The status line and headers of the upstream's response."""

    status: int
    reason: str
    headers: list[tuple[str, str]]

    @property
    def is_stream(self) -> bool:
        return (_header(self.headers, "content-type") or "").lower().startswith("text/event-stream")

    @property
    def framing(self) -> str:
        if "chunked" in (_header(self.headers, "transfer-encoding") or "").lower():
            return "chunked"
        return "length" if _header(self.headers, "content-length") is not None else "close"


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return headers


def _response(
    code: int, body: bytes = b"", content_type: str | None = None, headers: dict[str, str] | None = None
) -> bytes:
    """A whole HTTP/1.1 response with a Content-Length and ``Connection: close``."""
    lines = [f"HTTP/1.1 {code} {_reason(code)}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _reason(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _head_bytes(head: Head, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {head.status} {head.reason}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""


async def _read_chunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The data of a chunked body; raises if the body ends before its terminating chunk."""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return
        yield await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")


async def _read_body(reader: asyncio.StreamReader, head: Head) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives, unframed."""
    if head.framing == "chunked":
        async for data in _read_chunked(reader):
            yield data
    elif head.framing == "length":
        remaining = int(_header(head.headers, "content-length") or 0)
        while remaining > 0:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            yield data
    else:
        while data := await reader.read(65536):
            yield data


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]]]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
    return lines[0], _parse_headers(lines[1:])


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
    """The client's whole request, or ``None`` if it closed first or sent no valid HTTP."""
    try:
        first, headers = await _read_head(reader)
        method, target, _version = first.split(" ", 2)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return None
    if (_header(headers, "expect") or "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in (_header(headers, "transfer-encoding") or "").lower():
        body = b"".join([data async for data in _read_chunked(reader)])
    else:
        body = await reader.readexactly(int(_header(headers, "content-length") or 0))
    return Request(method, target, headers, body)


# -- event streams -------------------------------------------------------------------------------


async def _sse_blocks(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Complete SSE blocks (each with its blank line) as soon as they are complete; whatever is left
    when the body ends comes last, as it is."""
    buffer = b""
    async for data in chunks:
        buffer += data
        while True:
            # A CR at the very end may be the first half of a CRLF: wait for the next bytes.
            searchable = buffer[:-1] if buffer.endswith(b"\r") else buffer
            end = _EVENT_END.search(searchable)
            if end is None:
                break
            yield buffer[: end.end()]
            buffer = buffer[end.end() :]
    if buffer:
        yield buffer


def _field_lines(block: bytes) -> list[bytes]:
    return [line for line in _LINE_END.split(block) if line]


def _is_data_line(line: bytes) -> bool:
    return line == b"data" or line.startswith(b"data:")


def _is_event(block: bytes) -> bool:
    """Whether a client would dispatch this block: it has a data line (comments, e.g. pings, do not)."""
    return any(_is_data_line(line) for line in _field_lines(block))


def _event_data(block: bytes) -> str:
    values = [line[5:].removeprefix(b" ") for line in _field_lines(block) if _is_data_line(line)]
    return b"\n".join(values).decode("utf-8", "replace")


def _damaged(block: bytes) -> bytes:
    """The block with its last data line made invalid JSON: closing brace dropped, garbage added."""
    lines = block.splitlines(keepends=True)
    for index in reversed(range(len(lines))):
        text = lines[index].rstrip(b"\r\n")
        if _is_data_line(text):
            value = text[:-1] if text.endswith(b"}") else text
            lines[index] = value + b" <damaged>" + lines[index][len(text) :]
            break
    return b"".join(lines)


def _unknown_event(name: str | None, data: str) -> bytes:
    lines = ([f"event: {name}"] if name is not None else []) + [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


# -- the proxy -----------------------------------------------------------------------------------


@dataclass
class Seen:
    """One request the proxy received, and the fault(s) applied to it (``None``: passed through).
    Unpacks as ``(http_method, path, rpc_method, fault)``."""

    http_method: str
    path: str
    rpc_method: str | None
    fault: str | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.http_method, self.path, self.rpc_method, self.fault))


@dataclass
class _Window:
    """How long a created task stays "not found" (``delay_visibility``)."""

    fault: Fault
    remaining: int | None
    until: float | None


class _Conn:
    """One client connection and, once opened, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None

    async def send(self, data: bytes) -> None:
        if data:
            self.client.write(data)
            await self.client.drain()

    def close(self) -> None:
        """End both connections normally (FIN)."""
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()

    def reset(self) -> None:
        """Abort the client's connection with a TCP reset (SO_LINGER 0), and the upstream's."""
        sock = self.client.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.client.transport.abort()
        if self.upstream is not None:
            self.upstream.transport.abort()


class FaultProxy:
    """A fault-injecting proxy on ``127.0.0.1:<free port>`` in front of ``upstream``.

    Use ``with FaultProxy(url) as proxy`` (or ``async with``, or ``start()`` / ``stop()``); send the
    client to ``proxy.url``; ``proxy.add(fault)`` at any time. ``dialect`` picks the "task not found"
    answer of ``forget_tasks`` and ``delay_visibility``: ``agentvault`` (HTTP 200, JSON-RPC -32001),
    ``a2a-jsonrpc`` (-32001) or ``a2a-rest`` (HTTP 404, google.rpc style error).
    """

    def __init__(self, upstream: str, *, dialect: str = "agentvault") -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"upstream must be http:// on the loopback interface, not {upstream!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"give the upstream's base URL (http://host:port), not {upstream!r}")
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, not {dialect!r}")
        self.upstream = upstream.rstrip("/")
        self.dialect = dialect
        self._upstream_addr = (parts.hostname, parts.port or 80)
        self._cond = threading.Condition(threading.RLock())
        self._faults: list[Fault] = []
        self._seen: list[Seen] = []
        self._created: list[str] = []
        self._sends: dict[str, bytes] = {}  # created task id -> body of the send that created it
        self._known: set[str] = set()  # every task id seen in a request or an answer
        self._forgotten: set[str] = set()
        self._windows: dict[str, _Window] = {}
        self._errors: list[str] = []
        self.port: int | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: set[asyncio.Task] = set()

    # -- what tests use --

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the proxy is not running")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def requests(self) -> list[Seen]:
        """Every request received so far, in order."""
        with self._cond:
            return list(self._seen)

    @property
    def created_task_ids(self) -> list[str]:
        """Ids of the tasks that send answers through the proxy carried (also answers it then
        dropped), in order: what the agent holds because of the client."""
        with self._cond:
            return list(self._created)

    @property
    def created_by(self) -> dict[str, bytes]:
        """Each created task's id and the body of the send request that created it (what the client
        asked for): counts the remote tasks started per request content."""
        with self._cond:
            return dict(self._sends)

    @property
    def errors(self) -> list[str]:
        """Unexpected exceptions in the proxy itself (a test can assert there are none)."""
        with self._cond:
            return list(self._errors)

    def add(self, fault: Fault) -> Fault:
        """Apply ``fault`` from the next request on; returns it (its counters show what it did)."""
        with self._cond:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._cond:
            self._faults.remove(fault)

    def clear(self) -> None:
        """Remove every fault rule (forgotten and delayed tasks stay so)."""
        with self._cond:
            self._faults.clear()

    def forget_tasks(self) -> None:
        """Simulate an agent restart: every task seen so far is "not found" from now on."""
        with self._cond:
            self._forgotten |= self._known
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate()`` holds, rechecked on every change the proxy sees; bounded."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    # -- life cycle --

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0) or self._start_error is not None:
            self.stop()
            raise RuntimeError(f"the proxy did not start: {self._start_error!r}")
        return self

    def stop(self) -> None:
        """Stop serving and abort every open exchange (a stall included); returns within ~1 s."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stopping.set)
        thread.join(STOP_TIMEOUT + 2.0)
        self.port = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> FaultProxy:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._start_error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, LOOPBACK, 0, limit=HEAD_LIMIT)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in self._handlers:
                task.cancel()
            if self._handlers:
                await asyncio.wait(set(self._handlers), timeout=STOP_TIMEOUT)

    # -- bookkeeping (every change under the lock, and waiters notified) --

    def _mark(self, seen: Seen, kind: str) -> None:
        with self._cond:
            seen.fault = kind if seen.fault is None else f"{seen.fault}+{kind}"
            self._cond.notify_all()

    def _note_created(self, task_id: str | None, request: Request) -> None:
        if task_id is None:
            return
        with self._cond:
            if task_id not in self._created:
                self._created.append(task_id)
                self._sends[task_id] = request.body
                self._known.add(task_id)
                for fault in self._faults:
                    if fault.kind == "delay_visibility" and fault._take():
                        until = None if fault.seconds is None else time.monotonic() + fault.seconds
                        self._windows[task_id] = _Window(fault, fault.count, until)
                        break
            self._cond.notify_all()

    def _hidden(self, request: Request) -> str | None:
        """The fault that makes the named task "not found" now, if any (caller holds the lock)."""
        task_id = request.task_id
        if task_id is None:
            return None
        if task_id in self._forgotten:
            return "forget_tasks"
        window = self._windows.get(task_id)
        if window is None or not window.fault.when.matches(request, request.wants_stream):
            return None
        if window.remaining is not None and window.remaining > 0:
            window.remaining -= 1
            return "delay_visibility"
        if window.until is not None and time.monotonic() < window.until:
            return "delay_visibility"
        return None

    def _before_upstream(self, request: Request, seen: Seen) -> tuple[float, Fault | None, str | None]:
        """Latency to add, the gateway fault that answers instead of the upstream, or the fault that
        makes the named task "not found"."""
        with self._cond:
            if request.task_id is not None:
                self._known.add(request.task_id)
            delay, gateway = 0.0, None
            for fault in self._faults:
                if fault.kind in _ADDITIVE_KINDS:
                    if fault.when.matches(request, request.wants_stream) and fault._take():
                        self._mark(seen, fault.kind)
                        if fault.kind == "latency":
                            delay += fault.seconds
                        else:
                            self._forgotten |= self._known
                elif fault.kind in _GATEWAY_KINDS and gateway is None:
                    if fault.when.matches(request, request.wants_stream) and fault._take():
                        self._mark(seen, fault.kind)
                        gateway = fault
            hidden = None if gateway is not None else self._hidden(request)
            if hidden is not None:
                self._mark(seen, hidden)
            return delay, gateway, hidden

    def _on_response(self, request: Request, head: Head, seen: Seen) -> Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.kind not in _RESPONSE_KINDS or not fault.when.matches(request, head.is_stream):
                    continue
                needs_stream = fault.kind in _STREAM_ONLY_KINDS or (
                    fault.kind == "stall" and fault.after_events > 0
                )
                if needs_stream and not head.is_stream:
                    continue
                if fault._take():
                    self._mark(seen, fault.kind)
                    return fault
            return None

    # -- one exchange --

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = _Conn(writer)
        try:
            request = await asyncio.wait_for(_read_request(reader, writer), REQUEST_TIMEOUT)
            if request is not None:
                await self._exchange(request, conn)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            conn.reset()  # a peer went away or broke off: pass the break on
        except asyncio.CancelledError:  # stop(): the task ends here, so the cancel is not passed on
            conn.reset()  # (re-raised, Python 3.11's stream callback logs it as an error)
        except Exception as exc:  # noqa: BLE001 - a bug here must not pass silently
            with self._cond:
                self._errors.append(repr(exc))
            conn.reset()
        else:
            conn.close()
        finally:
            self._handlers.discard(task)

    async def _exchange(self, request: Request, conn: _Conn) -> None:
        seen = Seen(request.method, request.target, request.rpc_method)
        with self._cond:
            self._seen.append(seen)
            self._cond.notify_all()
        delay, gateway, hidden = self._before_upstream(request, seen)
        if delay:
            await asyncio.sleep(delay)
        if gateway is not None and gateway.kind == "reset_before_request":
            conn.reset()
            return
        if gateway is not None:
            await conn.send(self._status_answer(gateway))
            return
        if hidden is not None:
            await conn.send(self._not_found(request))
            return

        try:
            reader, conn.upstream = await asyncio.open_connection(*self._upstream_addr, limit=HEAD_LIMIT)
        except OSError as exc:
            await conn.send(_response(502, f"upstream unreachable: {exc}\n".encode(), "text/plain"))
            return
        conn.upstream.write(request.upstream_bytes())
        await conn.upstream.drain()
        try:
            first, headers = await asyncio.wait_for(_read_head(reader), UPSTREAM_TIMEOUT)
            _version, code, *reason = first.split(" ", 2)
            head = Head(int(code), reason[0] if reason else _reason(int(code)), headers)
        except asyncio.TimeoutError:
            await conn.send(_response(504, b"upstream sent no answer in time\n", "text/plain"))
            return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            await conn.send(_response(502, f"upstream broke off: {exc!r}\n".encode(), "text/plain"))
            return

        fault = self._on_response(request, head, seen)
        if fault is not None and fault.kind in ("status_after_upstream", "reset_after_request"):
            await self._capture_task_id(request, head, reader)
            if fault.kind == "reset_after_request":
                conn.reset()
            else:
                await conn.send(self._status_answer(fault))
            return
        await self._relay(request, head, reader, conn, fault)

    async def _capture_task_id(self, request: Request, head: Head, reader: asyncio.StreamReader) -> None:
        """Read enough of an answer that is about to be dropped to learn the task it created."""
        if not request.is_send:
            return
        # wait_for, not asyncio.timeout: the test stack runs on Python 3.10 too.
        with contextlib.suppress(asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            await asyncio.wait_for(self._read_created_task_id(request, head, reader), CAPTURE_TIMEOUT)

    async def _read_created_task_id(self, request: Request, head: Head, reader: asyncio.StreamReader) -> None:
        if head.is_stream:
            async for block in _sse_blocks(_read_body(reader, head)):
                if _is_event(block):
                    task_id = _answer_task_id(_json(_event_data(block)))
                    if task_id is not None:
                        self._note_created(task_id, request)
                        return
        else:
            body = b"".join([data async for data in _read_body(reader, head)])
            self._note_created(_answer_task_id(_json(body)), request)

    async def _relay(
        self, request: Request, head: Head, reader: asyncio.StreamReader, conn: _Conn, fault: Fault | None
    ) -> None:
        kind = fault.kind if fault is not None else None
        headers = [(k, v) for k, v in head.headers if k.lower() not in ("connection", "keep-alive")]
        if kind == "wrong_content_type":
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.insert(0, ("Content-Type", fault.value))  # type: ignore[union-attr]
        if request.method.upper() == "HEAD" or head.status in (204, 304) or head.status < 200:
            await conn.send(_head_bytes(head, [*headers, ("Connection", "close")]))
            return
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
        body = _read_body(reader, head)

        if not head.is_stream:  # agents' JSON answers are small: read whole, learn a created task's id
            data = b"".join([chunk async for chunk in body])
            if request.is_send:
                self._note_created(_answer_task_id(_json(data)), request)
            fixed = [*headers, ("Content-Length", str(len(data))), ("Connection", "close")]
            if kind == "stall":
                await self._stall(conn, head, fixed, fault)  # type: ignore[arg-type]
            else:
                await conn.send(_head_bytes(head, fixed) + data)
            return

        chunked = [*headers, ("Transfer-Encoding", "chunked"), ("Connection", "close")]
        if kind == "stall" and fault.after_events == 0:  # type: ignore[union-attr]
            await self._stall(conn, head, chunked, fault)  # type: ignore[arg-type]
            return
        await conn.send(_head_bytes(head, chunked))
        await self._relay_events(request, body, conn, fault)

    async def _relay_events(
        self, request: Request, body: AsyncIterator[bytes], conn: _Conn, fault: Fault | None
    ) -> None:
        """Relay an event stream one complete event at a time, applying a stream fault."""
        kind = fault.kind if fault is not None else None
        params = fault.params if fault is not None else {}
        need_task_id = request.is_send
        if kind == "cut_after_events" and params["n"] == 0:
            await self._cut(conn, params["abrupt"])
            return
        count = 0
        async for block in _sse_blocks(body):
            if not _is_event(block):  # a comment (ping) or a partial block at the end
                await conn.send(_chunk(block))
                continue
            count += 1
            if need_task_id:
                task_id = _answer_task_id(_json(_event_data(block)))
                self._note_created(task_id, request)
                need_task_id = task_id is None
            if kind == "inject_unknown_event" and count == params["n"]:
                await conn.send(_chunk(_unknown_event(params["name"], params["data"])))
            if kind == "damage_json" and count == params["n"]:
                block = _damaged(block)
            if kind == "cut_mid_event" and count == params["n"] + 1:
                await conn.send(_chunk(block[: max(1, len(block) // 2)]))
                conn.reset()
                return
            await conn.send(_chunk(block))
            if kind == "cut_after_events" and count == params["n"]:
                await self._cut(conn, params["abrupt"])
                return
            if kind == "stall" and count == params["after_events"]:
                await asyncio.sleep(params["seconds"])
                return
        await conn.send(b"0\r\n\r\n")

    @staticmethod
    async def _cut(conn: _Conn, abrupt: bool) -> None:
        if abrupt:
            conn.reset()
        else:
            await conn.send(b"0\r\n\r\n")

    @staticmethod
    async def _stall(conn: _Conn, head: Head, headers: list[tuple[str, str]], fault: Fault) -> None:
        """Send the head (if asked), then nothing; the caller then closes without ending the body."""
        if fault.head:
            await conn.send(_head_bytes(head, headers))
        await asyncio.sleep(fault.seconds)

    def _status_answer(self, fault: Fault) -> bytes:
        code = fault.code
        body = fault.body if fault.body is not None else f"{code} {_reason(code)} (fault proxy)\n"
        headers = dict(fault.headers or {})
        if fault.kind == "status" and fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        return _response(code, body.encode() if isinstance(body, str) else body, fault.content_type, headers)

    def _not_found(self, request: Request) -> bytes:
        """This dialect's "task not found" answer to ``request``."""
        if self.dialect == "a2a-rest":
            error = {
                "code": 404,
                "status": "NOT_FOUND",
                "message": "Task not found",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "TASK_NOT_FOUND",
                        "domain": "a2a-protocol.org",
                    }
                ],
            }
            return _response(404, _dumps({"error": error}), "application/json")
        message = f"Task not found: {request.task_id}" if self.dialect == "agentvault" else "Task not found"
        reply = {"jsonrpc": "2.0", "error": {"code": TASK_NOT_FOUND, "message": message}, "id": request.rpc_id}
        return _response(200, _dumps(reply), "application/json")


def _json(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
