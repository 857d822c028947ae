"""
HTTP exchanges as values: what the protocol core asks a transport to do, and what comes back.

The core (codecs, operations, the follower) is written as generators that *yield* effects (fetch this
request, open that stream, give me its next events, sleep so long) and receive the answers. Two thin
runners carry the effects out: :mod:`client` with requests for the workers and :mod:`async_client`
with httpx for the triggerer (events framed by sseclient-py and by :mod:`sse`). A runner makes no decision: it turns its
library's failures into a :class:`TransportFailure` with a neutral ``kind`` and hands it back, and the
core decides what error that is (:func:`failure_error`). So every rule is written once and both paths
behave identically by construction.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urljoin, urlsplit

from airflow_agentvault.protocol import errors

T = TypeVar("T")

#: A core routine: yields effects, receives their answers, returns a value.
Program = Generator[Any, Any, T]

CARD = "GET agent card"


@dataclass(frozen=True)
class Request:
    """One HTTP request of an operation, as a codec builds it."""

    op: str  # the protocol's name for it, quoted in errors ("tasks/get", "GetTask", "GET /tasks/{id}")
    http_method: str
    url: str
    endpoint: str  # the agent URL errors name
    body: Any = None  # JSON body
    headers: Mapping[str, str] = field(default_factory=dict)
    task_id: str | None = None
    starts_task: bool = False  # a send: if its answer is lost, the agent may have started a task anyway
    form: Mapping[str, str] | None = None  # a form body instead of JSON (OAuth2 token requests)

    @property
    def where(self) -> dict[str, Any]:
        return {"agent_url": self.endpoint, "method": self.op, "task_id": self.task_id}

    def to(self, url: str) -> Request:
        return Request(self.op, self.http_method, url, self.endpoint, self.body, self.headers, self.task_id,
                       self.starts_task, self.form)


@dataclass(frozen=True)
class Response:
    """An answer: status, the headers the core reads, and the body (empty for an opened stream's head)."""

    status: int
    content_type: str | None = None
    body: bytes = b""
    location: str | None = None
    retry_after: str | None = None


class ServerEvent(NamedTuple):
    """
    One SSE event as framed on the wire (name and data); keep-alive comments never get here.

    A named tuple rather than a frozen dataclass: the runners build one per event, and this is the
    cheapest immutable value to build.
    """

    event: str | None
    data: str


# -- effects ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    """
    Send ``request`` with ``headers`` added; answer: the whole :class:`Response`.

    The body is read bounded: more than ``max_bytes``, or still coming ``read_timeout`` after the head
    arrived (a trickle), is a :class:`TransportFailure` (``too_large``, ``read_timeout``).
    """

    request: Request
    headers: Mapping[str, str]
    read_timeout: float | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class Open:
    """
    Send ``request`` and keep the body open; answer: the :class:`Response` head (empty body).

    ``max_bytes``: the most the runner's framer holds for one event not yet complete; beyond it the next
    :class:`NextEvents` is a :class:`TransportFailure` (``too_large``), so an endless line never fills memory.
    """

    request: Request
    headers: Mapping[str, str]
    read_timeout: float | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class ReadRest:
    """Read what is left of the open body and close it; answer: bytes (bounded as :class:`Fetch` reads)."""

    read_timeout: float | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class NextEvents:
    """
    The open stream's next :class:`ServerEvent` s, or None once it ended cleanly (then it is closed).

    At least one event: all that the runner framed from what one read brought, so the core loops over
    many events per round trip instead of one (the round trip through its generators costs per event).
    """


#: The one :class:`NextEvents` a stream asks for again and again.
NEXT_EVENTS = NextEvents()


@dataclass(frozen=True)
class Close:
    """Close the open stream, if any."""


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Lookup:
    """Resolve a host name; answer: its IP addresses as text (empty when it cannot be resolved)."""

    host: str


@dataclass(frozen=True)
class Notify:
    """Call ``callback(value)`` (awaited if it returns an awaitable): e.g. registering a secret."""

    callback: Callable[[Any], Any]
    value: Any


@dataclass(frozen=True)
class AuthHeaders:
    """The headers of ``auth``: the runner runs ``auth.header_program()`` under the auth's lock."""

    auth: Any


class TransportFailure(Exception):
    """
    What a runner throws into the core when its library failed; the core names the error.

    ``kind``: ``connect_timeout``, ``connect`` (refused, DNS, TLS before the request left),
    ``read_timeout``, ``broken`` (the connection failed after the request was written), ``too_large``
    (an answer or an event above its limit: the runner stopped reading) or ``other``.
    ``sent``: the request may have reached the agent.
    """

    def __init__(self, kind: str, reason: str, *, sent: bool) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
        self.sent = sent


#: The largest answer body read (a task with all its messages and artifacts); beyond it AnswerTooLargeError.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: The largest single stream event held while it arrives; beyond it the stream is dropped and the task polled.
DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


class BodyLimit:
    """
    What a runner may read of one answer body: ``max_bytes`` in all, within ``seconds`` of the head.

    Both runners feed it each chunk they read (:meth:`take`), so a huge or endless answer and a trickle
    end the same way on either: a :class:`TransportFailure` the core names.
    """

    __slots__ = ("ends", "max_bytes", "read", "seconds")

    def __init__(self, max_bytes: int | None, seconds: float | None, content_length: str | None = None) -> None:
        self.max_bytes, self.seconds, self.read = max_bytes, seconds, 0
        self.ends = None if seconds is None else time.monotonic() + seconds
        if max_bytes is not None and content_length and content_length.isdigit() and int(content_length) > max_bytes:
            raise TransportFailure("too_large", f"{content_length} bytes announced, the limit is {max_bytes}",
                                   sent=True)

    def take(self, chunk: bytes) -> bytes:
        self.read += len(chunk)
        if self.max_bytes is not None and self.read > self.max_bytes:
            raise TransportFailure("too_large", f"more than {self.max_bytes} bytes", sent=True)
        if self.ends is not None and time.monotonic() > self.ends:
            raise TransportFailure("read_timeout", f"still arriving after {self.seconds:g} s ({self.read} bytes)",
                                   sent=True)
        return chunk


def check_held(held: int, max_bytes: int | None) -> None:
    """A framer holds ``held`` bytes of one event (complete or not): above ``max_bytes`` the stream is dropped."""
    if max_bytes is not None and held > max_bytes:
        raise TransportFailure("too_large", f"more than {max_bytes} bytes in one event", sent=True)


def stream_failure_error(failure: TransportFailure, request: Request, events: int) -> errors.StreamDisconnectedError:
    """What a stream failing after ``events`` events stands for: an event above the limit, or a disconnect."""
    if failure.kind == "too_large":
        return errors.EventTooLargeError(f"stream event {events + 1} is too large ({failure.reason}, see "
                                         "max_event_bytes); reading the task with get instead", **request.where)
    return errors.StreamDisconnectedError(f"stream broke after {events} events ({failure.reason})", **request.where)


def failure_error(failure: TransportFailure, request: Request, timeouts: tuple[float, float]) -> errors.AgentVaultError:
    """The typed error for a transport failure of ``request``."""
    connect, read = timeouts
    if failure.kind == "too_large":
        return errors.AnswerTooLargeError(
            f"answer too large: {failure.reason}; raise the connection's max_answer_bytes if it is expected",
            **request.where,
        )
    detail = {
        "connect_timeout": f"cannot connect within {connect:g} s",
        "read_timeout": f"no answer within {read:g} s",
        "connect": f"cannot connect ({failure.reason})",
        "broken": f"connection broke ({failure.reason})",
    }.get(failure.kind, f"request failed ({failure.reason})")
    if failure.sent and request.starts_task:
        return errors.AmbiguousSendError(
            f"{detail} after the request was sent: the agent may have started a task anyway", **request.where
        )
    return errors.AgentUnreachableError(detail, **request.where)


# -- content types and headers ------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    kind = media_type(content_type)
    return kind in ("application/json", "application/json-rpc") or kind.endswith("+json")


def is_event_stream(content_type: str | None) -> bool:
    return media_type(content_type) == "text/event-stream"


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds from now (delta seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now(), 0.0)


def snippet(body: bytes, limit: int = 120) -> str:
    """The start of a body for a log line or error (never used for bodies that may echo a credential)."""
    text = body[:limit].decode("utf-8", "replace").replace("\n", "\\n").strip()
    return text + ("..." if len(body) > limit else "") if text else "an empty body"


# -- redirects ----------------------------------------------------------------------------------------

#: Redirects followed per call: enough for ``/a2a`` -> ``/a2a/``, never a loop.
MAX_REDIRECTS = 3
_REDIRECTS = {301, 302, 303, 307, 308}


def redirect_target(request: Request, response: Response) -> str | None:
    """
    Where to follow a redirect, or None when the answer is not one we follow.

    Only within the origin the request went to, so credentials in headers never reach another host
    (requests and httpx strip only ``Authorization`` on such redirects, not an API key header); a POST
    is re-sent only on 307/308, which keep the method.
    """
    if response.status not in _REDIRECTS or not response.location:
        return None
    if request.http_method != "GET" and response.status not in (307, 308):
        return None
    target = urljoin(request.url, response.location)
    if origin(target) != origin(request.url):
        raise errors.ProtocolViolationError(
            f"agent redirected to another origin ({errors.redact_url(target)}); not followed, so that "
            "credentials stay with the connection's host", **request.where
        )
    return target


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> str:
    """
    ``scheme://host[:port]`` of ``url``: what credentials stay with, and what card paths hang off.

    Lowercased, without user info and without the scheme's default port, so that two spellings of one
    origin compare equal (``https://A.test:443`` is ``https://a.test``).
    """
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.netloc.rsplit("@", 1)[-1].lower()
    try:
        port = parts.port
    except ValueError:  # not a number: kept as written, so it never equals a real origin
        port = None
    if host.endswith(":") or port is not None and port == _DEFAULT_PORTS.get(scheme):
        host = host.rsplit(":", 1)[0]
    return f"{scheme}://{host}"
