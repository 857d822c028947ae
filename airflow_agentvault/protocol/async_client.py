"""
The asynchronous client: runs the core's routines over httpx, events framed by :mod:`sse` (the triggerer).

The same runner as :mod:`client` with awaited I/O: it performs effects and turns httpx's exceptions into
a :class:`TransportFailure`; every decision is in :mod:`operations` and :mod:`follow`. Use the client as
``async with AsyncAgentClient(...) as client:`` so its connections are closed.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import certifi
import httpx

from airflow_agentvault.protocol import operations
from airflow_agentvault.protocol.auth import NO_AUTH, Auth
from airflow_agentvault.protocol.client import STREAM_ACCEPT, addresses_of, failure_reason
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
)
from airflow_agentvault.protocol.follow import Follower, FollowOutcome
from airflow_agentvault.protocol.models import AgentCard, CancelResult, Message, Task, TaskEvent
from airflow_agentvault.protocol.operations import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, Agent, StreamWatch
from airflow_agentvault.protocol.push import PushSettings
from airflow_agentvault.protocol.sse import EventFramer
from airflow_agentvault.protocol.timing import Timing

#: Connection limits of a client's pool: httpx's defaults, or no idle connection kept (a wait by push).
KEEP_ALIVE = httpx.Limits()
NO_KEEP_ALIVE = httpx.Limits(max_keepalive_connections=0)

T = TypeVar("T")
log = logging.getLogger(__name__)
Sleeper = Callable[[float], Awaitable[None]]


@functools.lru_cache(maxsize=16)
def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """
    One SSL context per TLS setting, shared by every async client of the process.

    Building one loads the whole CA store (about a megabyte and milliseconds each); a triggerer
    following a thousand streams would otherwise hold a thousand copies. ``True`` trusts certifi's
    bundle (httpx's default), a string is a CA bundle path, ``False`` turns verification off.
    """
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else certifi.where())


@functools.lru_cache(maxsize=16)
def http_factory(verify: bool | str, keep_alive: bool) -> Callable[[], httpx.AsyncClient]:
    """What makes an httpx client for these settings: one per setting, not a closure kept by every waiting stage."""
    return functools.partial(httpx.AsyncClient, verify=ssl_context(verify),
                             limits=KEEP_ALIVE if keep_alive else NO_KEEP_ALIVE)


def _failure(exc: Exception) -> TransportFailure:
    reason = failure_reason(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportFailure("connect_timeout", reason, sent=False)
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure("read_timeout", reason, sent=True)
    if isinstance(exc, httpx.ConnectError):
        return TransportFailure("connect", reason, sent=False)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return TransportFailure("broken", reason, sent=True)
    return TransportFailure("other", reason, sent=False)


def _response(raw: httpx.Response, body: bytes = b"") -> Response:
    return Response(raw.status_code, raw.headers.get("Content-Type"), body, raw.headers.get("Location"),
                    raw.headers.get("Retry-After"))


@dataclass
class _OpenStream:
    response: httpx.Response | None = None
    events: AsyncIterator[list[ServerEvent]] | None = None
    max_bytes: int | None = None  # the most held for one event

    async def close(self) -> None:
        if self.response is not None:
            await self.response.aclose()
        self.response = self.events = None


class AsyncRunner:
    """Carries out the core's effects with httpx without blocking the event loop."""

    __slots__ = ("_make_http", "connect_timeout", "http", "sleep")  # one per waiting stage: no __dict__

    def __init__(self, http: httpx.AsyncClient, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 sleep: Sleeper = asyncio.sleep, make_http: Callable[[], httpx.AsyncClient] | None = None) -> None:
        self.http: httpx.AsyncClient | None = http
        self.connect_timeout = connect_timeout
        self.sleep = sleep
        # Given for a client of its own that keeps no idle connection: while a wait by push is parked the
        # client is closed and dropped (a few KiB per waiting stage), and made again for the next request.
        self._make_http = make_http

    async def run(self, program: Program[T], *, sleep: Sleeper | None = None) -> T:
        result: list[T] = []
        async for _ in self.steps(program, [], result, sleep=sleep):
            pass
        return result[0]

    async def steps(self, program: Program[T], out: list[Any], result: list[T], *, sleep: Sleeper | None = None
                    ) -> AsyncGenerator[Any, None]:
        """Run ``program``, yielding whatever it appended to ``out`` as soon as it did; its value goes to ``result``."""
        stream = _OpenStream()
        sleeper = sleep or self.sleep
        value: Any = None
        failure: TransportFailure | None = None
        try:
            while True:
                try:
                    effect = program.throw(failure) if failure is not None else program.send(value)
                except StopIteration as done:
                    result.append(done.value)
                    while out:
                        yield out.pop(0)
                    return
                while out:
                    yield out.pop(0)
                value = failure = None  # the last answer is not kept through the next effect (a long wait)
                try:  # a stream's next events, the most frequent effect, without the dispatch
                    value = await (self._next_events(stream) if type(effect) is NextEvents else
                                   self._perform(effect, stream, sleeper))
                except TransportFailure as exc:
                    value, failure = None, exc
        finally:
            await stream.close()
            program.close()

    @staticmethod
    async def _next_events(stream: _OpenStream) -> list[ServerEvent] | None:
        if stream.events is None:
            assert stream.response is not None, "NextEvents needs an open stream"
            stream.events = event_batches(stream.response, stream.max_bytes)
        try:
            return await stream.events.__anext__()
        except StopAsyncIteration:
            await stream.close()
            return None
        except TransportFailure:  # an event above the limit
            await stream.close()
            raise
        except (httpx.HTTPError, httpx.StreamError) as exc:
            await stream.close()
            raise TransportFailure("broken", type(exc).__name__, sent=True) from None

    async def _perform(self, effect: Any, stream: _OpenStream, sleep: Sleeper) -> Any:
        kind = type(effect)
        if kind is NextEvents:
            return await self._next_events(stream)
        if kind is Fetch:
            raw = await self._send(effect, stream=True)
            try:
                return _response(raw, await read_body(raw, effect.max_bytes, effect.read_timeout))
            finally:
                await raw.aclose()
        if kind is Open:
            await stream.close()
            stream.response = await self._send(effect, stream=True)
            stream.max_bytes = effect.max_bytes
            return _response(stream.response)
        if kind is ReadRest:
            try:
                return await read_body(stream.response, effect.max_bytes, effect.read_timeout) \
                    if stream.response is not None else b""
            finally:
                await stream.close()
        if kind is Close:
            await stream.close()
            return None
        if kind is Sleep:
            await sleep(effect.seconds)
            return None
        if kind is AuthHeaders:
            async with effect.auth.async_lock:
                return await self.run(effect.auth.header_program())
        if kind is Notify:
            told = effect.callback(effect.value)
            if inspect.isawaitable(told):
                await told
            return None
        if kind is Lookup:
            return await asyncio.to_thread(addresses_of, effect.host)
        raise TypeError(f"unknown effect {effect!r}")

    async def park(self) -> None:
        """Before a long wait: close and drop a client this runner can make again (made anew for the next request)."""
        if self._make_http is not None and self.http is not None:
            http, self.http = self.http, None
            await http.aclose()

    async def _send(self, effect: Fetch | Open, *, stream: bool) -> httpx.Response:
        request = effect.request
        read = effect.read_timeout
        timeout = httpx.Timeout(connect=self.connect_timeout, read=read, write=read, pool=self.connect_timeout)
        headers = {**effect.headers, **request.headers, **(STREAM_ACCEPT if stream else {})}
        body = {"data": request.form} if request.form is not None else {"json": request.body}
        if self.http is None:
            assert self._make_http is not None, "a runner without a client"
            self.http = self._make_http()
        try:
            built = self.http.build_request(request.http_method, request.url, headers=headers, timeout=timeout, **body)
            return await self.http.send(built, stream=stream, follow_redirects=False)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _failure(exc) from None


async def read_body(raw: httpx.Response, max_bytes: int | None, seconds: float | None) -> bytes:
    """The whole body of an answer, read as it arrives within its :class:`BodyLimit`."""
    limit = BodyLimit(max_bytes, seconds, raw.headers.get("Content-Length"))
    try:
        return b"".join([limit.take(chunk) async for chunk in raw.aiter_bytes()])
    except httpx.TimeoutException:
        raise TransportFailure("read_timeout", "timed out", sent=True) from None
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise TransportFailure("broken", failure_reason(exc), sent=True) from None


async def event_batches(response: httpx.Response, max_bytes: int | None = None
                        ) -> AsyncIterator[list[ServerEvent]]:
    """A stream's events, one list per read and one at its end (see :func:`sse.event_batches`)."""
    framer = EventFramer(max_bytes)
    async for chunk in response.aiter_bytes():
        yield framer.feed(chunk)
    yield framer.end()


class AsyncAgentClient:
    """
    Talks to one agent endpoint in its dialect without blocking the event loop: the triggers' client.

    Takes :class:`~airflow_agentvault.protocol.client.AgentClient`'s arguments, and ``http``: an
    ``httpx.AsyncClient`` to use (then the caller closes it); by default one of its own, keeping idle
    connections open unless ``keep_alive`` is False (a wait by push, which reads the task rarely: its
    client is then closed while the wait is parked, and made again for the next read).
    """

    __slots__ = ("_owns_http", "agent", "push", "runner")  # one per waiting stage: no __dict__

    def __init__(self, rpc_url: str, *, codec: Codec | None = None, auth: Auth = NO_AUTH, verify: bool | str = True,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 http: httpx.AsyncClient | None = None, sleep: Sleeper = asyncio.sleep, keep_alive: bool = True) -> None:
        self.agent = Agent(codec or AgentVaultCodec(), rpc_url, auth, connect_timeout, read_timeout,
                           max_answer_bytes=max_answer_bytes, max_event_bytes=max_event_bytes)
        self._owns_http = http is None
        # Without keep-alive no idle connection stays open between reads: a wait by push then holds no socket.
        # Not one pool shared by many waits: httpcore walks a pool's connections and queued requests on
        # every request, so a thousand waits waking at once would each pay for all the others.
        make_http = http_factory(verify, keep_alive)
        self.runner = AsyncRunner(http or make_http(), connect_timeout=connect_timeout, sleep=sleep,
                                  make_http=make_http if http is None and not keep_alive else None)
        self.push = PushSettings()  # the connection's push settings (the hook sets them)

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http and self.runner.http is not None:
            await self.runner.http.aclose()

    async def park(self) -> None:
        """Before a long wait: drop the connections of a client made without keep-alive (see ``AsyncRunner.park``)."""
        await self.runner.park()

    @property
    def rpc_url(self) -> str:
        return self.agent.endpoint

    @property
    def dialect(self) -> str:
        return self.agent.dialect

    async def run(self, program: Program[T], *, sleep: Sleeper | None = None) -> T:
        """Run a core routine (an operation, a follower's wait) against this agent."""
        return await self.runner.run(program, sleep=sleep)

    async def send(self, message: Message, *, task_id: str | None = None, context_id: str | None = None) -> str:
        return await self.run(operations.send(self.agent, message, task_id, context_id))

    async def get(self, task_id: str) -> Task:
        return await self.run(operations.get(self.agent, task_id))

    async def cancel(self, task_id: str) -> CancelResult:
        return await self.run(operations.cancel(self.agent, task_id))

    async def fetch_card(self, card_url: str) -> AgentCard:
        return await self.run(operations.fetch_card(self.agent, card_url))

    async def subscribe(self, task_id: str, *, read_timeout: float | None = None) -> AsyncIterator[TaskEvent]:
        """The task's events as they arrive, until a state that ends the wait (see :func:`operations.subscribe`)."""
        out: list[TaskEvent] = []
        watch = StreamWatch(out.append)
        steps = self.runner.steps(
            operations.subscribe(self.agent, task_id, read_timeout or self.agent.read_timeout, watch), out, [])
        try:
            async for event in steps:
                yield event
        finally:
            await steps.aclose()


class AsyncTaskFollower:
    """A :class:`Follower` run by an async client: ``follow``, ``finished``, ``wait_until_visible``."""

    def __init__(self, client: AsyncAgentClient, timing: Timing, *, logger: Any = log,
                 on_event: Callable[[TaskEvent], None] | None = None, clock: Callable[[], float] = time.time,
                 sleep: Sleeper | None = None) -> None:
        self.client = client
        self.follower = Follower(client.agent, timing, logger, on_event, clock)
        self.sleep = sleep

    async def follow(self, task_id: str, *, deadline: float | None = None, seen: Task | None = None
                     ) -> FollowOutcome:
        return await self.client.run(self.follower.follow(task_id, deadline=deadline, seen=seen), sleep=self.sleep)

    async def finished(self, task_id: str) -> FollowOutcome | None:
        return await self.client.run(self.follower.finished(task_id), sleep=self.sleep)

    async def wait_until_visible(self, task_id: str, *, deadline: float | None = None) -> Task:
        wait = self.follower.visibility_wait(task_id, deadline=deadline)
        return await self.client.run(self.follower.wait_until_visible(wait), sleep=self.sleep)
