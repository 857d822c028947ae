"""
The agent's operations as core routines: send, get, cancel, read the card, follow a stream, discover.

Each is a generator over :mod:`exchange` effects, written once for every dialect (the :class:`Codec`
decides the wire format) and for both runners. Rules that hold whatever the dialect:

* Credentials are added to every request; redirects are followed only within the request's origin.
* ``Retry-After`` on an answer that failed (429, 503) is kept on the error, for the follower's next wait.
* A subscription answered without a stream raises the typed error the answer carries (AgentVault's
  "Task not found"); any other answer (a wrong content type, an HTML page from a proxy, an empty body, a
  plain result) is a :class:`StreamDisconnectedError` that names what came back: the stream is an
  optimisation, the task is read with ``get`` anyway.
* In a stream, keep-alive events without data are ignored, an event of an unknown type or shape is
  skipped (and said), an event that cannot be read ends the stream as a disconnect quoting the damage,
  and the stream ends after the first status that ends the wait.
* "Task not found" to a subscription, where the dialect's SDKs answer so for a finished task, is checked
  with one ``get``: a task that has ended makes it :class:`StreamUnavailableError` (read it at once).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_agentvault.protocol import errors, tracing
from airflow_agentvault.protocol.auth import NO_AUTH, Auth
from airflow_agentvault.protocol.codec import Codec, UnknownEvent
from airflow_agentvault.protocol.dialects import AUTO, codec_for
from airflow_agentvault.protocol.dialects.a2a_errors import VERSION_HEADER
from airflow_agentvault.protocol.dialects.cards import (
    Discovered,
    DiscoveredCard,
    card_urls,
    finish_discovery,
    take_card_answer,
)
from airflow_agentvault.protocol.exchange import (
    CARD,
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_MAX_EVENT_BYTES,
    NEXT_EVENTS,
    AuthHeaders,
    Close,
    Fetch,
    Open,
    Program,
    ReadRest,
    Request,
    Response,
    TransportFailure,
    failure_error,
    is_event_stream,
    redirect_target,
    retry_after_seconds,
    snippet,
    stream_failure_error,
)
from airflow_agentvault.protocol.jsonrpc import raise_for_http_status
from airflow_agentvault.protocol.models import (
    AgentCard,
    CancelResult,
    Message,
    Task,
    TaskEvent,
    TaskState,
    ends_wait,
)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Agent:
    """Who we talk to and how: the dialect's codec, the endpoint, credentials, timeouts and size limits."""

    codec: Codec
    endpoint: str
    auth: Auth = NO_AUTH
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    name: str | None = None  # from the agent card, for spans
    agent_id: str | None = None
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    push_offered: bool = False  # its card says it sends push notifications (capabilities.pushNotifications)

    @property
    def dialect(self) -> str:
        return self.codec.dialect


# -- one request ----------------------------------------------------------------------------------------


def fetch(agent: Agent, request: Request, read_timeout: float | None = None) -> Program[Response]:
    """Send a request (credentials added, same-origin redirects followed) and return the whole answer."""
    response = yield from _send(Fetch, agent, request, read_timeout)
    return response


def open_stream(agent: Agent, request: Request, read_timeout: float | None) -> Program[Response]:
    """Send a streaming request; its body stays open for :class:`NextEvents` / :class:`ReadRest`."""
    response = yield from _send(Open, agent, request, read_timeout)
    return response


def _send(effect: type, agent: Agent, request: Request, read_timeout: float | None) -> Program[Response]:
    headers = tracing.with_context((yield AuthHeaders(agent.auth)))
    read = read_timeout or agent.read_timeout
    limit = agent.max_event_bytes if effect is Open else agent.max_answer_bytes
    for _ in range(4):  # the request and up to three redirects (/a2a -> /a2a/), never a loop
        try:
            response: Response = yield effect(request, headers, read, limit)
        except TransportFailure as failure:
            raise failure_error(failure, request, (agent.connect_timeout, read)) from None
        target = redirect_target(request, response)
        if target is None:
            return response
        if effect is Open:
            yield Close()
        request = request.to(target)
    return response


def answer(agent: Agent, request: Request, response: Response, *, subscribing: bool = False) -> Any:
    """The payload of a plain answer, or the typed error it carries (with the agent's ``Retry-After``)."""
    try:
        return agent.codec.answer(request, response.status, response.content_type, response.body,
                                  subscribing=subscribing)
    except errors.AgentUnreachableError as exc:
        exc.retry_after = retry_after_seconds(response.retry_after)
        raise


def call(agent: Agent, request: Request) -> Program[Any]:
    response = yield from fetch(agent, request)
    return answer(agent, request, response)


# -- the operations ---------------------------------------------------------------------------------------


#: Statuses that may come after the agent acted on a send (an error inside it, a gateway giving up on it).
AMBIGUOUS_STATUSES = frozenset({500, 502, 504})


def send(agent: Agent, message: Message, task_id: str | None = None, context_id: str | None = None
         ) -> Program[str]:
    """
    Start a task (or send a follow-up message to ``task_id``); return the task id.

    An answer lost after the request reached the agent (a reset, a read timeout, 500/502/504 without an
    error the agent wrote) is :class:`AmbiguousSendError`: a task may exist, so nobody should resend blindly.
    ``context_id`` names the conversation where the dialect lets the client choose it, so that
    :func:`find_started` can find that task again.
    """
    request = agent.codec.send_request(agent.endpoint, message, task_id, context_id)
    try:
        response = yield from fetch(agent, request)
        try:
            payload = answer(agent, request, response)
        except errors.AgentUnreachableError as exc:
            if response.status not in AMBIGUOUS_STATUSES:
                raise
            raise errors.AmbiguousSendError(
                f"{exc.detail} to the send: the agent (or a gateway in front of it) may have started the task "
                "anyway", **request.where,
            ) from None
    except errors.AmbiguousSendError as unsure:
        tracing.failure(tracing.SEND_AMBIGUOUS, unsure)
        raise
    started = agent.codec.send_result(request, payload)
    tracing.event(tracing.SEND, **{"agentvault.task.id": started, "agentvault.follow_up": task_id is not None})
    return started


def find_started(agent: Agent, context_id: str) -> Program[Task | None]:
    """
    The task a send in conversation ``context_id`` started, found by listing the conversation's tasks.

    None where the dialect cannot list tasks (AgentVault, A2A 0.3), the listing fails, or it is empty:
    then nobody can tell whether the send started one. Of several (earlier tries' tasks), one that has
    not ended without a result, the most recently updated.
    """
    request = agent.codec.list_request(agent.endpoint, context_id)
    if request is None:
        return None
    try:
        payload = yield from call(agent, request)
    except errors.AgentVaultError:
        return None
    tasks = agent.codec.list_result(request, payload)
    ended = (TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED)
    return max(tasks, key=lambda task: (task.state not in ended, str(task.updated_at or "")), default=None)


def get(agent: Agent, task_id: str) -> Program[Task]:
    request = agent.codec.get_request(agent.endpoint, task_id)
    payload = yield from call(agent, request)
    return agent.codec.task_result(request, payload)


def cancel(agent: Agent, task_id: str) -> Program[CancelResult]:
    request = agent.codec.cancel_request(agent.endpoint, task_id)
    try:
        payload = yield from call(agent, request)
    except errors.AgentVaultError as exc:
        refused = agent.codec.cancel_refused(request, exc)
        if refused is None:
            raise
        return refused
    return agent.codec.cancel_result(request, payload)


def fetch_card(agent: Agent, card_url: str) -> Program[AgentCard]:
    request = agent.codec.card_request(card_url)
    response = yield from fetch(agent, request)
    raise_for_http_status(response.status, hint="check the agent card URL", body=response.body, **request.where)
    return agent.codec.card(card_json(response.body, request), card_url)


def card_json(body: bytes, request: Request) -> dict[str, Any]:
    """A card's JSON object, whatever its content type (static servers label cards loosely)."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise errors.ProtocolViolationError("agent card is not valid JSON", **request.where) from None
    if not isinstance(raw, dict):
        raise errors.ProtocolViolationError("agent card is not a JSON object", **request.where)
    return raw


@dataclass
class StreamWatch:
    """What a subscription reports besides events: skipped events and the count so far."""

    on_event: Callable[[TaskEvent], None]
    on_skip: Callable[[str], None] = field(default=lambda note: None)
    #: Called after each read of the stream, events or not: a trickle of bytes still meets the deadline.
    on_read: Callable[[], None] = field(default=lambda: None)
    events: int = 0


def subscribe(agent: Agent, task_id: str, read_timeout: float, watch: StreamWatch) -> Program[None]:
    """Hand each event of the task's stream to ``watch`` until a state that ends the wait; see the module doc."""
    request = agent.codec.subscribe_request(agent.endpoint, task_id)
    try:
        yield from _stream(agent, request, read_timeout, watch)
    except errors.TaskNotFoundError as exc:
        if not agent.codec.subscribe_not_found_may_mean_finished:
            raise
        yield Close()
        task = yield from _peek(agent, task_id)
        raise _no_stream_or(exc, task) from None
    yield Close()  # on errors the runner closes it: at the next request, or when the routine ends


def _stream(agent: Agent, request: Request, read_timeout: float, watch: StreamWatch) -> Program[None]:
    head = yield from open_stream(agent, request, read_timeout)
    if head.status >= 300 or not is_event_stream(head.content_type):
        body = yield from _rest_of(agent, request, read_timeout)
        raise _not_a_stream(agent, request, head, body)
    decoder = agent.codec.stream_decoder(request)
    decoder.max_bytes = agent.max_answer_bytes
    while True:
        try:
            batch = yield NEXT_EVENTS
        except TransportFailure as failure:
            raise stream_failure_error(failure, request, watch.events) from None
        if batch is None:
            raise errors.StreamDisconnectedError(
                f"stream ended after {watch.events} events without a terminal state", **request.where
            )
        for sse in batch:
            if not sse.data:  # keep-alive
                continue
            try:
                events = decoder.feed(sse)
            except UnknownEvent as unknown:
                watch.on_skip(f"skipped an event this client does not know ({unknown})")
                continue
            except errors.ProtocolViolationError as damage:
                raise errors.StreamDisconnectedError(
                    f"event {watch.events + 1} could not be read ({damage.detail}): {snippet(sse.data.encode())}",
                    **request.where,
                ) from None
            for event in events:
                watch.events += 1
                watch.on_event(event)
                if ends_wait(event):
                    return
        watch.on_read()  # after the batch: a terminal event in it is taken even past the deadline


def _rest_of(agent: Agent, request: Request, read_timeout: float) -> Program[bytes]:
    try:
        body: bytes = yield ReadRest(read_timeout, agent.max_answer_bytes)
    except TransportFailure as failure:  # broke off, or too large to quote: the task is read with get
        raise stream_failure_error(failure, request, 0) from None
    return body


def _not_a_stream(agent: Agent, request: Request, head: Response, body: bytes) -> errors.AgentVaultError:
    """The error a subscription answered without a stream stands for: what it carries, else a disconnect."""
    try:
        payload = answer(agent, request, Response(head.status, head.content_type, body, retry_after=head.retry_after),
                         subscribing=True)
    except errors.ProtocolViolationError:
        pass  # unreadable as an answer too: a proxy's page, a wrong content type, an empty body
    except errors.AgentVaultError as carried:
        return carried
    else:
        if head.status < 300 and isinstance(payload, dict | list):
            return errors.StreamDisconnectedError(
                f"subscription answered a JSON result instead of a stream: {json.dumps(payload)[:200]}",
                **request.where,
            )
    return errors.StreamDisconnectedError(
        f"subscription answered HTTP {head.status} with content type {head.content_type or 'none'!r} "
        f"instead of an event stream ({snippet(body)})", **request.where,
    )


def _peek(agent: Agent, task_id: str) -> Program[Task | None]:
    try:
        task = yield from get(agent, task_id)
    except errors.AgentVaultError:
        return None
    return task


def _no_stream_or(exc: errors.TaskNotFoundError, task: Task | None) -> errors.AgentVaultError:
    """
    "Task not found" on a subscription, yet ``get`` finds the task stopped: the agent just has no stream.

    a2a-sdk 0.3.x answers -32001 to ``tasks/resubscribe`` once the task's executor has returned (a task
    waiting in input-required, say). A task that ``get`` cannot find (or that still runs: a race with its
    creation) keeps the retryable TaskNotFoundError.
    """
    if task is None or not task.state.ends_wait:
        return exc
    return errors.StreamUnavailableError(
        f"agent has no stream for this task ({exc.detail}, yet get finds it {task.state.value}); "
        "reading it with get instead",
        agent_url=exc.agent_url, method=exc.method, task_id=exc.task_id, code=exc.code, data=exc.data,
    )


# -- discovery ----------------------------------------------------------------------------------------------


def discover(agent: Agent, url: str, *, dialect: str | None = None,
             endpoint_hint: str | None = None) -> Program[Discovered]:
    """Read the agent card for ``url`` (card, base or endpoint URL) and pick the dialect and endpoint."""
    tried: list[str] = []
    card: DiscoveredCard | None = None
    for candidate in card_urls(url):
        # A2A 1.0 servers that declare only 1.0 interfaces refuse a card request without the version header.
        request = Request(CARD, "GET", candidate, candidate, headers={VERSION_HEADER: "1.0"})
        response = yield from fetch(agent, request)
        try:
            raw = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raw = None
        card = take_card_answer(candidate, response.status, response.content_type, raw, tried)
        if card is not None:
            break
    return finish_discovery(card, url, tried, agent.auth, dialect, endpoint_hint)


def resolve(probe: Agent, dialect: str, rpc_url: str | None, card_url: str) -> Program[Discovered]:
    """
    The dialect and endpoint for a connection's settings, reading the card only when needed.

    ``auto`` reads the card (``rpc_url`` as the endpoint hint). A fixed dialect with an endpoint reads
    nothing, unless the endpoint is a bare base URL (``http://host:port/``): then the card names that
    dialect's endpoint, and without a card the base URL is used as given. A fixed dialect with only a
    card URL takes that dialect's endpoint from the card. ``probe`` says how to reach the card.
    """
    if dialect == AUTO:
        found = yield from discover(probe, card_url, endpoint_hint=rpc_url)
        return found
    codec_for(dialect)
    if rpc_url and not is_base_url(rpc_url):
        return Discovered(dialect, rpc_url, None)
    try:
        found = yield from discover(probe, rpc_url or card_url, dialect=dialect)
    except errors.ProtocolViolationError:
        if not rpc_url:
            raise
        return Discovered(dialect, rpc_url, None)  # no card (or none for this dialect): the URL as given
    return found


def is_base_url(url: str) -> bool:
    return urlsplit(url).path in ("", "/")
