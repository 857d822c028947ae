"""
Tracing in a benchmark's child process: ``off`` (as installed, no tracer provider: the default),
``on`` (an OpenTelemetry SDK tracer provider whose spans are batched and dropped, so the cost is the
provider's recording, not an exporter's network), or ``absent`` (the provider's tracing calls replaced
by no-ops, as if the code were not there). ``off`` against ``absent`` is what tracing costs when off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

MODES = ("absent", "off", "on")


def set_tracing(mode: str) -> None:
    """Put this process's tracing in ``mode``; call before any stream starts."""
    if mode == "on":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)
    elif mode == "absent":
        from opentelemetry.trace import INVALID_SPAN

        from airflow_agentvault.protocol import tracing

        def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        def same(headers: Mapping[str, str]) -> Mapping[str, str]:
            return headers

        @contextlib.contextmanager
        def no_span(**kwargs: Any) -> Iterator[Any]:
            yield INVALID_SPAN

        tracing.recording = lambda: False  # type: ignore[assignment]
        tracing.event = tracing.annotate = tracing.failure = tracing.identify = nothing  # type: ignore[assignment]
        tracing.with_context = same  # type: ignore[assignment]
        tracing.invoke_agent = no_span  # type: ignore[assignment]
    elif mode != "off":
        raise ValueError(f"tracing mode {mode!r}: one of {', '.join(MODES)}")
