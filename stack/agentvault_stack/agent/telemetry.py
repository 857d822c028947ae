"""
The reference agents' side of a trace: continue the caller's trace, and report token usage.

Each JSON-RPC request opens a SERVER span under the ``traceparent`` it carries (W3C trace context), and
a task's work runs in a span under the send that started it, so one trace shows the caller's stage and
the agent's work. Spans are exported over OTLP/HTTP only when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; otherwise the API's no-op tracer costs nothing.
Usage is counted in words (these agents run no model): ``metadata.usage`` of the finished task.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

T = TypeVar("T")
TRACER_NAME = "agentvault_stack.agent"
SERVICE_NAME = "agentvault-reference-agent"
_PROPAGATOR = TraceContextTextMapPropagator()
_configured = threading.Lock()
#: The OTLP endpoints this process exports to, each with the processor that sends there.
_exporting: dict[str, Any] = {}


def configure() -> None:
    """
    Export spans over OTLP/HTTP to the configured endpoint, once per endpoint and process.

    Agents started in a process that already traces (a test process, say) add their exporter to its
    tracer provider: OTel allows one provider per process.
    """
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    with _configured:
        if not endpoint or endpoint in _exporting:
            return
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
            provider = TracerProvider(resource=resource)
            trace.set_tracer_provider(provider)
        processor = BatchSpanProcessor(OTLPSpanExporter())
        provider.add_span_processor(processor)
        _exporting[endpoint] = processor


def stop_exporting(endpoint: str) -> None:
    """
    Send what is buffered for ``endpoint`` and stop exporting there.

    A process that outlives its receiver (a test process) would otherwise keep posting to a closed port
    from the exporter's thread for as long as it runs.
    """
    with _configured:
        processor = _exporting.pop(endpoint, None)
    if processor is not None:
        processor.shutdown()  # flushes first; a shut-down processor drops later spans


def flush(timeout_millis: int = 5000) -> None:
    """Export what is buffered (before the agent stops, or before a test reads the receiver)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_millis)


@contextlib.contextmanager
def server_span(request: Any, method: str, agent_name: str) -> Iterator[None]:
    """The SERVER span of one JSON-RPC request, a child of the caller's span when it sent ``traceparent``."""
    configure()
    parent = _PROPAGATOR.extract(_headers(request.headers))
    attributes = {"rpc.system": "jsonrpc", "rpc.method": method, "gen_ai.agent.name": agent_name,
                  "server.address": request.url.hostname or "", "server.port": request.url.port or 0}
    with trace.get_tracer(TRACER_NAME).start_as_current_span(method, context=parent, kind=SpanKind.SERVER,
                                                             attributes=attributes):
        yield


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {key: headers[key] for key in ("traceparent", "tracestate") if key in headers}


async def traced_work(work: Coroutine[Any, Any, T], task_id: str, skill: str) -> T:
    """A task's work as the span ``agent.work`` (under the request that started it: asyncio copies the context)."""
    attributes = {"gen_ai.operation.name": "invoke_agent", "agentvault.task.id": task_id, "agentvault.skill": skill}
    with trace.get_tracer(TRACER_NAME).start_as_current_span("agent.work", attributes=attributes):
        return await work


def report_usage(task: Any) -> None:
    """Put the task's usage in its metadata (what the client reads) and on the current span."""
    usage = word_usage(task.messages)
    task.metadata = {**(task.metadata or {}), "usage": usage}
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"gen_ai.usage.{key}": value for key, value in usage.items()})


def word_usage(messages: list[dict[str, Any]]) -> dict[str, int]:
    """``{"input_tokens", "output_tokens"}``: words the user sent, words the agent answered."""
    counts = {"input_tokens": 0, "output_tokens": 0}
    for message in messages:
        key = "input_tokens" if message.get("role") == "user" else "output_tokens"
        for part in message.get("parts") or []:
            if part.get("type") == "text" and isinstance(part.get("content"), str):
                counts[key] += len(part["content"].split())
    return counts
