"""
The blocking client: runs the core's routines over requests (Airflow workers).

The runner performs effects and nothing else: it sends what the core built, hands back status, headers
and bytes, frames SSE (sseclient-py fed the reads: :func:`event_batches`), sleeps, and turns requests'
exceptions into a :class:`TransportFailure` the core names. Every decision is in :mod:`operations` and
:mod:`follow`; :mod:`async_client` is the same runner over httpx for the triggerer.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import sseclient
import urllib3

from airflow_agentvault.protocol import operations
from airflow_agentvault.protocol.auth import NO_AUTH, Auth
from airflow_agentvault.protocol.codec import Codec
from airflow_agentvault.protocol.dialects.agentvault import AgentVaultCodec
from airflow_agentvault.protocol.exchange import (
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_MAX_EVENT_BYTES,
    AuthHeaders,
    BodyLimit,
    Close,
    Fetch,
    Lookup,
    NextEvents,
    Notify,
    Open,
    Program,
    ReadRest,
    Response,
    ServerEvent,
    Sleep,
    TransportFailure,
    check_held,
)
from airflow_agentvault.protocol.follow import Follower, FollowOutcome
from airflow_agentvault.protocol.models import AgentCard, CancelResult, Message, Task, TaskEvent
from airflow_agentvault.protocol.operations import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, Agent, StreamWatch
from airflow_agentvault.protocol.timing import Timing

T = TypeVar("T")
log = logging.getLogger(__name__)

STREAM_ACCEPT = {"Accept": "text/event-stream"}


def failure_reason(exc: BaseException) -> str:
    """A short cause without the URL (the error already names it, redacted)."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset",
                   "RemoteDisconnected", "SSL", "certificate"):
        if marker in text:
            return marker
    return type(exc).__name__


def _failure(exc: requests.RequestException) -> TransportFailure:
    reason = failure_reason(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return TransportFailure("connect_timeout", reason, sent=False)
    if isinstance(exc, requests.Timeout):
        return TransportFailure("read_timeout", reason, sent=True)
    if isinstance(exc, requests.ConnectionError):
        broken = any(m in str(exc) for m in ("Connection aborted", "RemoteDisconnected", "Connection reset"))
        return TransportFailure("broken" if broken else "connect", reason, sent=broken)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return TransportFailure("broken", reason, sent=True)
    return TransportFailure("other", reason, sent=False)


def _response(raw: requests.Response, body: bytes = b"") -> Response:
    return Response(raw.status_code, raw.headers.get("Content-Type"), body, raw.headers.get("Location"),
                    raw.headers.get("Retry-After"))


@dataclass
class _OpenStream:
    response: requests.Response | None = None
    events: Iterator[Any] | None = None
    max_bytes: int | None = None  # the most held for one event

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
        self.response = self.events = None


class BlockingRunner:
    """Carries out the core's effects with requests; one open stream per routine at a time."""

    def __init__(self, *, verify: bool | str = True, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.verify = verify
        self.connect_timeout = connect_timeout
        self.session = session or requests.Session()
        self.sleep = sleep

    def run(self, program: Program[T], *, sleep: Callable[[float], None] | None = None) -> T:
        steps = self.steps(program, [], sleep=sleep)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                value: T = done.value
                return value

    def steps(self, program: Program[T], out: list[Any], *, sleep: Callable[[float], None] | None = None
              ) -> Generator[Any, None, T]:
        """Run ``program``, yielding whatever it appended to ``out`` as soon as it did; return its value."""
        stream = _OpenStream()
        sleeper = sleep or self.sleep
        value: Any = None
        failure: TransportFailure | None = None
        try:
            while True:
                try:
                    effect = program.throw(failure) if failure is not None else program.send(value)
                except StopIteration as done:
                    yield from _drain(out)
                    result: T = done.value
                    return result
                if out:
                    yield from _drain(out)
                failure = None
                try:  # a stream's next events, the most frequent effect, without the dispatch
                    value = self._next_events(stream) if type(effect) is NextEvents else \
                        self._perform(effect, stream, sleeper)
                except TransportFailure as exc:
                    value, failure = None, exc
        finally:
            stream.close()
            program.close()

    @staticmethod
    def _next_events(stream: _OpenStream) -> list[ServerEvent] | None:
        if stream.events is None:
            assert stream.response is not None, "NextEvents needs an open stream"
            stream.events = event_batches(body_chunks(stream.response.raw), stream.max_bytes)
        try:
            batch = next(stream.events, None)
        except TransportFailure:  # an event above the limit
            stream.close()
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            stream.close()
            raise TransportFailure("broken", type(exc).__name__, sent=True) from None
        except UnicodeDecodeError:  # a damaged event: the stream ends as a disconnect (tasks/get is the truth)
            stream.close()
            raise TransportFailure("broken", "an event that is not UTF-8", sent=True) from None
        if batch is None:
            stream.close()
        return batch

    def _perform(self, effect: Any, stream: _OpenStream, sleep: Callable[[float], None]) -> Any:
        kind = type(effect)
        if kind is NextEvents:
            return self._next_events(stream)
        if kind is Fetch:
            raw = self._send(effect, stream=True)
            try:
                return _response(raw, read_body(raw, effect.max_bytes, effect.read_timeout))
            finally:
                raw.close()
        if kind is Open:
            stream.close()
            stream.response = self._send(effect, stream=True)
            stream.max_bytes = effect.max_bytes
            return _response(stream.response)
        if kind is ReadRest:
            try:
                return read_body(stream.response, effect.max_bytes, effect.read_timeout) \
                    if stream.response is not None else b""
            finally:
                stream.close()
        if kind is Close:
            stream.close()
            return None
        if kind is Sleep:
            sleep(effect.seconds)
            return None
        if kind is AuthHeaders:
            with effect.auth.lock:
                return self.run(effect.auth.header_program())
        if kind is Notify:
            effect.callback(effect.value)
            return None
        if kind is Lookup:
            return addresses_of(effect.host)
        raise TypeError(f"unknown effect {effect!r}")

    def _send(self, effect: Fetch | Open, *, stream: bool) -> requests.Response:
        request = effect.request
        headers = {**effect.headers, **request.headers, **(STREAM_ACCEPT if stream else {})}
        body = {"data": request.form} if request.form is not None else {"json": request.body}
        try:
            return self.session.request(
                request.http_method, request.url, headers=headers, timeout=(self.connect_timeout, effect.read_timeout),
                verify=self.verify, allow_redirects=False, stream=stream, **body,
            )
        except requests.RequestException as exc:
            raise _failure(exc) from None


def addresses_of(host: str) -> list[str]:
    """The IP addresses ``host`` resolves to (empty when it does not): both runners' :class:`Lookup`."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in found})


#: The most one read of a stream's body takes; a read returns what has arrived, up to this.
READ_SIZE = 65536


def body_chunks(raw: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """
    A streamed body as it arrives, decoded (gzip and the like), until it ends.

    Iterating a requests response instead reads 128 bytes at a time, and on a body that is not chunked
    each read waits until all 128 have come: a cost for every event, and an event that ends a pause in
    the stream would wait for bytes that do not come. ``read1`` returns whatever has arrived.
    """
    while chunk := raw.read1(READ_SIZE, decode_content=True):
        yield chunk


def read_body(raw: requests.Response, max_bytes: int | None, seconds: float | None) -> bytes:
    """The whole body of an answer, read as it arrives within its :class:`BodyLimit`."""
    limit = BodyLimit(max_bytes, seconds, raw.headers.get("Content-Length"))
    try:
        body = b"".join(limit.take(chunk) for chunk in body_chunks(raw.raw))
    except urllib3.exceptions.ReadTimeoutError:
        raise TransportFailure("read_timeout", "timed out", sent=True) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransportFailure("broken", failure_reason(exc), sent=True) from None
    raw.raw.release_conn()  # read to its end: the connection serves the next request
    return body


def event_batches(reads: Iterable[bytes], max_bytes: int | None = None) -> Iterator[list[ServerEvent]]:
    """
    The events sseclient-py frames from a stream's reads: one list per read, every event it completed.

    sseclient-py pulls the next read itself once its events are out, so a client over the whole stream
    would block on the socket before the runner could hand the read's events on. So each read's
    complete events (up to its last blank line) go to a fresh SSEClient, which frames them all at
    once; the unfinished rest waits for the next read. A read that ends no event is only kept. At the
    stream's end what is left is framed as sseclient-py frames a stream's end.

    An event that is not UTF-8 raises UnicodeDecodeError after the events before it (the runner ends
    the stream as a disconnect); a character cut between reads is never framed before its rest comes.
    An event above ``max_bytes``, or more held for an unfinished one, raises a ``too_large``
    :class:`TransportFailure`.
    """
    held = b""
    for read in reads:
        data = held + read if held else read
        cut = max(data.rfind(blank) + len(blank) if blank in data else 0 for blank in _BLANK_LINES)
        if not cut:
            held = data
            check_held(len(held), max_bytes)
            yield []
            continue
        held = data[cut:]
        check_held(len(held), max_bytes)
        batch: list[ServerEvent] = []
        try:
            for sse in sseclient.SSEClient(iter((data[:cut],))).events():
                batch.append(ServerEvent(sse.event, sse.data))
        except UnicodeDecodeError:
            if batch:
                yield batch
            raise
        if max_bytes is not None and cut > max_bytes:  # a read that may hold a whole event above the limit
            for event in batch:
                check_held(len(event.data), max_bytes)
        yield batch
    yield [ServerEvent(sse.event, sse.data) for sse in sseclient.SSEClient(iter((held,))).events()]


#: What ends an event: a blank line after a line end, in each of SSE's three line-end styles.
_BLANK_LINES = (b"\r\n\r\n", b"\n\n", b"\r\r")


def _drain(out: list[Any]) -> Iterator[Any]:
    while out:
        yield out.pop(0)


class AgentClient:
    """
    Talks to one agent endpoint in its dialect, blocking: the operators' and the sensor's client.

    :param rpc_url: the agent's endpoint (JSON-RPC endpoint, or the HTTP+JSON base URL).
    :param codec: the dialect (AgentVault by default; see :mod:`dialects`).
    :param auth: credentials as headers (see :mod:`auth`).
    :param verify: TLS verification: True, False, or a CA bundle path.
    :param connect_timeout: seconds to establish a connection.
    :param read_timeout: seconds to wait for a plain call's answer (its body included).
    :param max_answer_bytes: the largest answer body read (:class:`~errors.AnswerTooLargeError` beyond).
    :param max_event_bytes: the largest stream event held (beyond it the task is read with ``get``).
    """

    def __init__(self, rpc_url: str, *, codec: Codec | None = None, auth: Auth = NO_AUTH, verify: bool | str = True,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.agent = Agent(codec or AgentVaultCodec(), rpc_url, auth, connect_timeout, read_timeout,
                           max_answer_bytes=max_answer_bytes, max_event_bytes=max_event_bytes)
        self.runner = BlockingRunner(verify=verify, connect_timeout=connect_timeout, session=session, sleep=sleep)

    @property
    def rpc_url(self) -> str:
        return self.agent.endpoint

    @property
    def dialect(self) -> str:
        return self.agent.dialect

    def run(self, program: Program[T], *, sleep: Callable[[float], None] | None = None) -> T:
        """Run a core routine (an operation, a follower's wait) against this agent."""
        return self.runner.run(program, sleep=sleep)

    def send(self, message: Message, *, task_id: str | None = None, context_id: str | None = None) -> str:
        return self.run(operations.send(self.agent, message, task_id, context_id))

    def get(self, task_id: str) -> Task:
        return self.run(operations.get(self.agent, task_id))

    def cancel(self, task_id: str) -> CancelResult:
        return self.run(operations.cancel(self.agent, task_id))

    def fetch_card(self, card_url: str) -> AgentCard:
        return self.run(operations.fetch_card(self.agent, card_url))

    def subscribe(self, task_id: str, *, read_timeout: float | None = None) -> Iterator[TaskEvent]:
        """The task's events as they arrive, until a state that ends the wait (see :func:`operations.subscribe`)."""
        out: list[TaskEvent] = []
        watch = StreamWatch(out.append)
        return (yield from self.runner.steps(
            operations.subscribe(self.agent, task_id, read_timeout or self.agent.read_timeout, watch), out))


class TaskFollower:
    """A :class:`Follower` run by a blocking client: ``follow``, ``finished``, ``wait_until_visible``."""

    def __init__(self, client: AgentClient, timing: Timing, *, logger: Any = log,
                 on_event: Callable[[TaskEvent], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.client = client
        self.follower = Follower(client.agent, timing, logger, on_event, clock)
        self.sleep = sleep

    def follow(self, task_id: str, *, deadline: float | None = None, seen: Task | None = None) -> FollowOutcome:
        return self.client.run(self.follower.follow(task_id, deadline=deadline, seen=seen), sleep=self.sleep)

    def finished(self, task_id: str) -> FollowOutcome | None:
        return self.client.run(self.follower.finished(task_id), sleep=self.sleep)

    def wait_until_visible(self, task_id: str, *, deadline: float | None = None) -> Task:
        wait = self.follower.visibility_wait(task_id, deadline=deadline)
        return self.client.run(self.follower.wait_until_visible(wait), sleep=self.sleep)
