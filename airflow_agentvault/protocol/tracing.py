"""
Spans for agent calls: the one place the protocol core (and the provider) speaks OpenTelemetry.

A stage opens one ``invoke_agent`` span (OTel GenAI conventions) as the current span where its work
runs: a worker's execute, a trigger's run; Airflow's task or trigger span is its parent when Airflow
traces. The core's decisions add events to whatever span is current, from the one place each decision
is made (:mod:`follow`, :mod:`operations`), and every request carries the current context as
``traceparent``/``tracestate`` so an agent that traces continues the trace. Without a tracer provider
the current span records nothing: each call is one context lookup, and nothing is added per event.

Attributes hold ids, counts, states, seconds and redacted URLs; never headers or bodies, where
credentials live. Exception texts are the provider's own (which never hold a credential).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from airflow_agentvault.protocol import errors

TRACER_NAME = "airflow_agentvault"
PROVIDER_NAME = "a2a"  # gen_ai.provider.name: the protocol the agent speaks, not a model vendor
_PROPAGATOR = TraceContextTextMapPropagator()

#: Events: one name per decision, so a trace reads like the task log's story.
SEND = "agentvault.send"
SEND_AMBIGUOUS = "agentvault.send.ambiguous"
RECONNECT = "agentvault.reconnect"
VISIBILITY_CHECK = "agentvault.visibility.check"
VISIBLE = "agentvault.visible"
SUBSCRIBE = "agentvault.subscribe"
SUBSCRIPTION_END = "agentvault.subscription.end"
EVENT_SKIPPED = "agentvault.event.skipped"
FALLBACK_POLLING = "agentvault.fallback.polling"
PUSH_REGISTERED = "agentvault.push.registered"
POLL_FAILED = "agentvault.poll.failed"
RETRY_AFTER = "agentvault.retry_after"
DEFERRED = "agentvault.deferred"
DELIVERED = "agentvault.delivered"
PERSON_ASKED = "agentvault.person.asked"
PERSON_ANSWERED = "agentvault.person.answered"


class AgentLike(Protocol):
    """What a span says about the agent (an :class:`operations.Agent`)."""

    @property
    def endpoint(self) -> str: ...

    @property
    def dialect(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    @property
    def agent_id(self) -> str | None: ...


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OTel takes str, bool, int, float (or sequences of them); None means "not known" and is left out."""
    return {k: v for k, v in attributes.items() if v is not None}


def recording() -> bool:
    """Whether the current span records: callers skip building costly attributes when not."""
    return trace.get_current_span().is_recording()


def spans_recorded() -> bool:
    """Whether spans started now can record (a tracer provider is configured): else a wait need keep none."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def event(name: str, **attributes: Any) -> None:
    """An event on the current span (nothing when it does not record)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, _clean(attributes))


def annotate(**attributes: Any) -> None:
    """Attributes on the current span (nothing when it does not record)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(_clean(attributes))


def failure(name: str, exc: errors.AgentVaultError, **attributes: Any) -> None:
    """An event for a fault met on the way (what kind, its detail, the agent's ``Retry-After``)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, _clean({"error.type": type(exc).__name__, "agentvault.detail": exc.detail,
                                     "agentvault.retry_after": getattr(exc, "retry_after", None), **attributes}))


def with_context(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` plus the current trace context (W3C ``traceparent``, ``tracestate``), if there is one."""
    if not trace.get_current_span().get_span_context().is_valid:
        return headers
    carrier = dict(headers)
    _PROPAGATOR.inject(carrier)
    return carrier


def agent_attributes(agent: AgentLike) -> dict[str, Any]:
    """The GenAI and server attributes of a call to ``agent`` (the endpoint redacted)."""
    parts = urlsplit(agent.endpoint)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return _clean({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": PROVIDER_NAME,
        "gen_ai.agent.name": agent.name,
        "gen_ai.agent.id": agent.agent_id,
        "server.address": parts.hostname,
        "server.port": port,
        "url.full": errors.redact_url(agent.endpoint),
        "agentvault.dialect": agent.dialect,
    })


def identify(agent: AgentLike) -> None:
    """Name the current step span after ``agent`` and add its attributes (once the agent is resolved)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(agent_attributes(agent))
        if agent.name:
            span.update_name(f"invoke_agent {agent.name}")


@contextlib.contextmanager
def invoke_agent(*, step: str, conversation_id: str | None = None,
                 benign: tuple[type[BaseException], ...] = ()) -> Iterator[Span]:
    """
    A stage step's ``invoke_agent`` span, current while the block runs (a CLIENT span under the current one).

    :func:`identify` adds the agent once it is known. An exception ends the span with status ERROR,
    ``error.type`` and the error's words; one of ``benign`` (an Airflow deferral) ends it with an event
    instead, since the stage goes on elsewhere.
    """
    with agent_span(step=step, conversation_id=conversation_id, benign=benign) as span, current(span):
        yield span


@contextlib.contextmanager
def agent_span(*, step: str, conversation_id: str | None = None,
               benign: tuple[type[BaseException], ...] = ()) -> Iterator[Span]:
    """
    :func:`invoke_agent`'s span without making it current: for a block that hands control back between
    pieces of its work (a trigger yielding its events), which makes it current around each piece
    (:func:`current`), so that what runs in between is not under it.
    """
    with _start_agent_span(step, conversation_id) as span:
        try:
            yield span
        except benign as exc:
            span.add_event(DEFERRED, {"agentvault.reason": type(exc).__name__})
            raise
        except BaseException as exc:
            if span.is_recording():
                detail = exc.detail if isinstance(exc, errors.AgentVaultError) else str(exc)
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {detail}"[:500]))
            raise


def _start_agent_span(step: str, conversation_id: str | None) -> Span:
    """The span, started; the tracer and attributes stay out of :func:`agent_span`'s frame, which a trigger
    waiting for hours keeps."""
    attributes = _clean({"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": PROVIDER_NAME,
                         "agentvault.step": step, "gen_ai.conversation.id": conversation_id})
    return trace.get_tracer(TRACER_NAME).start_span("invoke_agent", kind=SpanKind.CLIENT, attributes=attributes,
                                                    record_exception=False, set_status_on_exception=False)


def current(span: Span) -> contextlib.AbstractContextManager[Span]:
    """Make ``span`` current for a block, without ending it (its :func:`agent_span` does)."""
    return trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False)
