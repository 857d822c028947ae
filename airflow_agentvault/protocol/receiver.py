"""
The push receiver: one small HTTP listener per process and event loop, shared by every task waiting by push.

Agents POST a notification to ``<public URL>/a2a-push/<channel>``; the channel is a random name given to
one wait, and the ``X-A2A-Notification-Token`` header must carry that wait's random token (compared in
constant time). A verified notification only rings the wait's doorbell: a flag, not a queue, so memory
per waiting task is fixed, and the waiter reads the task with ``get`` (the body is drained, never
trusted). Anything else is answered (404 unknown route or channel, 401 wrong token, 413 too large) without
acting on it; nothing else is served. HTTP is parsed by h11 over asyncio streams. Started lazily inside
the running loop (the triggerer's) by :func:`shared_receiver`; a wait that moves to another process opens
a new channel on that process's receiver and registers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import weakref
from dataclasses import dataclass, field

import h11

from airflow_agentvault.protocol.async_client import AsyncAgentClient, Sleeper
from airflow_agentvault.protocol.follow import Follower, FollowOutcome, PushWait
from airflow_agentvault.protocol.models import Task
from airflow_agentvault.protocol.push import PushPlan, PushSettings, wants_push

log = logging.getLogger(__name__)

PREFIX = "/a2a-push/"
TOKEN_HEADER = b"x-a2a-notification-token"
#: Largest notification body read (an A2A StreamResponse with a task; the body is drained, not kept).
MAX_BODY = 1024 * 1024
#: Seconds a connection may take to send one request, and may idle between requests.
REQUEST_TIMEOUT = 30.0
#: Waits one receiver serves at most; one more is refused (its wait streams instead).
MAX_CHANNELS = 200_000
#: Waits of one process that begin at once (see :func:`start_slot`).
STARTS_AT_ONCE = 32
#: Seconds one wait holds its start slot at most: a slow beginning then lets the next wait begin.
START_HOLD = 10.0


class Doorbell:
    """
    One wait's wake-up flag: :meth:`ring` sets it; :meth:`wait` gives a future that is True once rung (at
    once if it rang since the last wait), False after ``seconds``.

    A bare future and a timer: no routine of its own (nor ``asyncio.wait_for``, a task per wait) stays
    suspended for each stage parked on its doorbell.
    """

    __slots__ = ("_rung", "_timer", "_waiter")

    def __init__(self) -> None:
        self._rung = False
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> bool:
        """A wait is parked on it (the task was registered and read)."""
        return self._waiter is not None and not self._waiter.done()

    def ring(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._answer(self._waiter, True)
        else:  # between two waits (the waiter is reading the task): the next wait returns at once
            self._rung = True

    def wait(self, seconds: float) -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self.close()  # one wait at a time: an earlier one still pending ends now, unrung
        if self._rung:
            self._rung = False
            waiter.set_result(True)
            return waiter
        self._waiter = waiter
        self._timer = loop.call_later(max(seconds, 0.0), self._answer, waiter, False)
        return waiter

    def _answer(self, waiter: asyncio.Future[bool], rung: bool) -> None:
        if waiter is self._waiter:
            self._stop_timer()
            self._waiter = None
        if not waiter.done():  # a cancelled wait is left as it is
            waiter.set_result(rung)

    def close(self) -> None:
        """The wait is over (ended or cancelled): no timer of it stays scheduled, no future of it pending."""
        if self._waiter is not None:
            self._answer(self._waiter, False)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass(slots=True)
class Channel:
    """One wait's route on the receiver: its URL (for the push config), token and doorbell."""

    name: str
    url: str
    token: str = field(repr=False)
    doorbell: Doorbell = field(default_factory=Doorbell)


class PushReceiver:
    """The listener: ``await start()``, then :meth:`open` a channel per wait and :meth:`close` it after."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None) -> None:
        self.host, self.port, self.public_url = host, port, public_url
        self.channels: dict[str, Channel] = {}
        self.server: asyncio.Server | None = None
        self.counts = {"rung": 0, "refused": 0}

    async def start(self) -> PushReceiver:
        self.server = await asyncio.start_server(self._serve, self.host, self.port, limit=64 * 1024)
        bound = self.server.sockets[0].getsockname()
        self.port = bound[1]
        if not self.public_url:
            host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            self.public_url = f"http://{host}:{self.port}"
        log.info("Push receiver listening on %s:%d for agents calling %s", self.host, self.port, self.public_url)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.is_serving()

    def open(self, token: str) -> Channel:
        """A new channel for one wait; ``token`` is what the agent must send back."""
        if len(self.channels) >= MAX_CHANNELS:
            raise OverflowError(f"the push receiver already serves {MAX_CHANNELS} waits")
        name = secrets.token_urlsafe(16)
        channel = Channel(name, f"{(self.public_url or '').rstrip('/')}{PREFIX}{name}", token)
        self.channels[name] = channel
        return channel

    def close(self, channel: Channel) -> None:
        self.channels.pop(channel.name, None)
        channel.doorbell.close()

    def verdict(self, method: bytes, target: bytes, token: bytes | None) -> int:
        """The status for one request (and the ring, if it is a verified notification): 200, 401 or 404."""
        path = target.decode("latin-1").split("?", 1)[0]
        channel = self.channels.get(path[len(PREFIX):]) if method == b"POST" and path.startswith(PREFIX) else None
        if channel is None:
            self.counts["refused"] += 1
            return 404
        if token is None or not hmac.compare_digest(token, channel.token.encode()):
            self.counts["refused"] += 1
            return 401
        self.counts["rung"] += 1
        channel.doorbell.ring()
        return 200

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        try:
            while True:
                status = await asyncio.wait_for(self._one_request(conn, reader), REQUEST_TIMEOUT)
                if status is None:
                    return
                writer.write(conn.send(h11.Response(status_code=status, headers=[(b"content-length", b"0")])))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (asyncio.TimeoutError, ConnectionError, h11.ProtocolError, OSError):
            return
        finally:
            writer.close()

    async def _one_request(self, conn: h11.Connection, reader: asyncio.StreamReader) -> int | None:
        """Read one request; its status (the verdict, or 413), or None when the peer closed or broke HTTP."""
        request: h11.Request | None = None
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(64 * 1024)
                conn.receive_data(data)
                if not data and request is None:
                    return None
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    self.counts["refused"] += 1
                    return 413
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                token = next((v for k, v in request.headers if k == TOKEN_HEADER), None)
                return self.verdict(request.method, request.target, token)
            elif isinstance(event, h11.ConnectionClosed):
                return None


class StartSlot:
    """A place among a process's beginning waits (:func:`start_slot`); :meth:`release` it once the wait settled."""

    __slots__ = ("_gate", "_timer")

    def __init__(self, gate: asyncio.Semaphore, loop: asyncio.AbstractEventLoop) -> None:
        self._gate: asyncio.Semaphore | None = gate
        self._timer = loop.call_later(START_HOLD, self.release)

    @property
    def held(self) -> bool:
        return self._gate is not None

    def release(self, _: object = None) -> None:
        """Let the next wait begin; more calls do nothing. (The argument: a follower's ``Notify`` value.)"""
        if self._gate is not None:
            self._timer.cancel()
            self._gate.release()
            self._gate = None


_STARTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def start_slot() -> StartSlot:
    """
    Wait for one of this process's :data:`STARTS_AT_ONCE` start slots, held until the wait parks (by push)
    or starts streaming, at most :data:`START_HOLD` seconds.

    Why: a triggerer that starts thousands of waits at once (after a restart, or a wide mapped stage) would
    otherwise open as many connections to the agent at once, and interleave their short-lived requests and
    answers with the waits' long-lived state, so the process kept the memory of that peak for as long as
    they wait (a third of a push wait's memory at ten thousand).
    """
    loop = asyncio.get_running_loop()
    gate = _STARTS.get(loop)
    if gate is None:
        gate = _STARTS[loop] = asyncio.Semaphore(STARTS_AT_ONCE)
    await gate.acquire()
    return StartSlot(gate, loop)


_SHARED: dict[tuple[int, str, int], PushReceiver] = {}
_LOCKS: dict[int, asyncio.Lock] = {}


async def shared_receiver(host: str = "127.0.0.1", port: int = 0, public_url: str | None = None) -> PushReceiver:
    """This loop's receiver for ``host:port`` (started on first use); every wait of the process shares it."""
    loop = id(asyncio.get_running_loop())
    lock = _LOCKS.setdefault(loop, asyncio.Lock())
    async with lock:
        key = (loop, host, port)
        receiver = _SHARED.get(key)
        if receiver is None or not receiver.running:
            receiver = _SHARED[key] = await PushReceiver(host, port, public_url).start()
        return receiver


async def stop_shared() -> None:
    """Stop this loop's receivers (tests; a triggerer just exits)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _SHARED if k[0] == loop]:
        await _SHARED.pop(key).stop()


async def follow(client: AsyncAgentClient, follower: Follower, task_id: str, *, deadline: float,
                 seen: Task | None = None, known_state: str | None = None, push_mode: str | None = None,
                 sleep: Sleeper | None = None, slot: StartSlot | None = None) -> FollowOutcome:
    """
    Follow a task on an async client: by push where the mode and the agent say so, else by stream.

    ``push_mode``: the stage's choice, else the connection's (``client.push``). The wait gets a channel on
    this process's receiver and a fresh token; a receiver that cannot start (a taken port) means streaming.
    ``slot``: the caller's :func:`start_slot` (taken before it read the connection), else one taken here;
    released once the wait is parked or streaming.
    """
    slot = slot or await start_slot()
    try:
        settings = client.push
        wanted = wants_push(push_mode or settings.mode, client.agent)
        opened = await _channel(settings, follower, task_id) if wanted else None
        if opened is None:
            slot.release()
            return await client.run(follower.follow(task_id, deadline=deadline, seen=seen, known_state=known_state),
                                    sleep=sleep)
        receiver, channel = opened
        try:
            plan = PushPlan(channel.url, channel.doorbell, settings.safety_poll, channel.token)
            began = await client.run(follower.follow_by_push(task_id, plan, deadline=deadline, seen=seen,
                                                             known_state=known_state, streaming=slot.release),
                                     sleep=sleep)
            seen = None  # a wait parked for hours keeps no copy of the task
            await client.park()
            slot.release()
            return await wait_by_push(client, follower, began, sleep=sleep)
        finally:
            receiver.close(channel)
    finally:
        slot.release()


async def _channel(settings: PushSettings, follower: Follower, task_id: str) -> tuple[PushReceiver, Channel] | None:
    """A channel for one wait on this process's receiver, with a fresh token; None (stream instead) when the
    receiver cannot start (a taken port) or serves as many waits as it may."""
    try:
        receiver = await shared_receiver(settings.bind_host, settings.bind_port, settings.public_url)
        return receiver, receiver.open(secrets.token_urlsafe(32))
    except (OSError, OverflowError) as exc:
        follower.logger.warning("No push receiver for task %s (%s); streaming instead", task_id, exc)
        return None


async def wait_by_push(client: AsyncAgentClient, follower: Follower, waiting: FollowOutcome | PushWait, *,
                       sleep: Sleeper | None = None) -> FollowOutcome:
    """
    Park a wait by push until its doorbell rings or its safety read is due, read the task, and again.

    Each read runs the follower afresh from the :class:`PushWait`, and the client is closed while parked:
    a parked stage keeps its wait's few fields, no suspended routine, connection or task.
    """
    while isinstance(waiting, PushWait):
        await client.park()
        await waiting.plan.doorbell.wait(waiting.next_read)
        outcome = await client.run(follower.read_by_push(waiting), sleep=sleep)
        if outcome is not None:
            return outcome
    return waiting
