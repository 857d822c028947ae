"""The reference agents' exporter stops when its receiver goes: no thread keeps posting to a closed port."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace

from agentvault_stack.agent import telemetry


class CountingReceiver(BaseHTTPRequestHandler):
    """Answers every OTLP export with 200 and counts the posts."""

    posts: list[str] = []

    def do_POST(self):  # noqa: N802 - the name http.server calls
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.posts.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def receiver():
    CountingReceiver.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), CountingReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", CountingReceiver.posts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def end_a_span(name):
    trace.get_tracer("test").start_span(name).end()


def test_stopping_sends_what_is_buffered_then_nothing_more(monkeypatch: pytest.MonkeyPatch):
    with receiver() as (url, posts):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
        telemetry.configure()
        end_a_span("while exporting")
        telemetry.stop_exporting(url)
        assert posts == ["/v1/traces"]  # the buffered span went out when the exporter stopped

        end_a_span("after stopping")
        telemetry.flush()
        assert posts == ["/v1/traces"]


def test_stopping_an_endpoint_never_exported_to_is_harmless():
    telemetry.stop_exporting("http://127.0.0.1:9")
