"""
A trace viewer on 127.0.0.1: Arize Phoenix, fed over OTLP/HTTP, for the demo's ``--trace`` and the tests.

Why Phoenix: it accepts OTLP/HTTP at ``/v1/traces`` (what Airflow, the provider and the agents export),
shows the trace tree in a UI and answers ``GET /v1/projects/{project}/spans``, so a test asserts on what a
real backend stored. Its pins clash with Airflow's, so it runs from a venv of its own, installed with uv
from ``phoenix-requirements.txt`` (exact pins) on first use (minutes; then reused). Every wait is bounded
and the server's whole process group is stopped on exit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REQUIREMENTS = Path(__file__).with_name("phoenix-requirements.txt")
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 240.0  # Phoenix imports a lot: about a minute on a loaded 2-core machine
BUILD_TIMEOUT = 900.0
POLL_INTERVAL = 0.25  # between reads of the server while a bounded wait goes on

#: What Airflow needs to trace and export to the viewer (the OTEL_* part the agents read too).
AIRFLOW_TRACING = {"AIRFLOW__TRACES__OTEL_ON": "True"}


class ViewerError(RuntimeError):
    """The viewer could not be installed or started, or never held the spans waited for."""


def otel_env(url: str) -> dict[str, str]:
    """The standard variables that send spans to the viewer at ``url`` over OTLP/HTTP, soon after they end."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_TRACES_EXPORTER": "otlp_proto_http",
            "OTEL_BSP_SCHEDULE_DELAY": "200"}


def venv(cache: Path | None = None) -> Path:
    """Phoenix's venv (``<repo>/.cache/phoenix-<pins hash>``), installed with uv unless it is complete."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    folder = (cache or REPO / ".cache") / f"phoenix-{digest}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    uv = os.environ.get("UV") or shutil.which("uv")  # the scripts export the uv they found or installed
    if uv is None:
        raise ViewerError("uv is not on PATH (set UV=/path/to/uv): it installs the trace viewer's own venv")
    shutil.rmtree(folder, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    for step in ([uv, "venv", "--python", "3.11", str(folder)],
                 [uv, "pip", "install", "--python", str(folder / "bin" / "python"), "-r", str(REQUIREMENTS)]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
        if done.returncode != 0:
            raise ViewerError(f"installing the trace viewer failed ({' '.join(step[:3])}): {done.stderr[-2000:]}")
    marker.touch()
    return folder


class Viewer:
    """A running Phoenix: ``url`` (the UI, and the OTLP base URL) and its spans read back."""

    def __init__(self, url: str) -> None:
        self.url = url

    def spans(self, project: str = "default") -> list[dict[str, Any]]:
        """Every span stored for ``project``: name, context, parent_id, attributes, events, status."""
        spans: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):  # pages: a bound, never a loop
            query = urllib.parse.urlencode({"limit": "1000", **({"cursor": cursor} if cursor else {})})
            with urllib.request.urlopen(f"{self.url}/v1/projects/{project}/spans?{query}", timeout=30) as answer:
                page = json.load(answer)
            spans.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return spans

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0,
                 project: str = "default") -> list[dict[str, Any]]:
        """The stored spans once ``predicate(spans)`` holds (spans arrive in batches); ViewerError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans(project)
            if predicate(spans):
                return spans
            if time.monotonic() >= deadline:
                raise ViewerError(f"after {timeout:g} s the viewer holds {len(spans)} spans: "
                                  f"{sorted({s['name'] for s in spans})}")
            time.sleep(POLL_INTERVAL)  # the pace of reading the server, not a guess at when spans arrive


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(200 <= answer.status < 300)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_viewer(cache: Path | None = None, timeout: float = START_TIMEOUT) -> Iterator[Viewer]:
    """Start Phoenix on free loopback ports, its data in a temporary folder; stop its process group after."""
    python = venv(cache) / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="phoenix-") as work:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(PHOENIX_WORKING_DIR=work, PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(port),
                   PHOENIX_GRPC_PORT=str(_free_port()), PHOENIX_TELEMETRY_ENABLED="false")
        with open(Path(work) / "phoenix.log", "wb") as log:
            proc = subprocess.Popen([str(python), "-m", "phoenix.server.main", "serve"], env=env, cwd=work,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + timeout
                while not _answers(f"{url}/healthz"):
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=POLL_INTERVAL)  # ends early if Phoenix exits
                    if proc.poll() is not None or time.monotonic() >= deadline:
                        tail = (Path(work) / "phoenix.log").read_bytes()[-2000:].decode(errors="replace")
                        raise ViewerError(f"Phoenix did not start within {timeout:g} s: {tail}")
                yield Viewer(url)
            finally:
                _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


@contextlib.contextmanager
def exporting_spans(url: str) -> Iterator[None]:
    """This process's spans go to the viewer at ``url`` while the block runs (one span at a time, at once)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    class WhileOn(SpanProcessor):
        """Hands finished spans on while ``on`` (a provider cannot drop a processor)."""

        def __init__(self, inner: SpanProcessor) -> None:
            self.inner, self.on = inner, True

        def on_end(self, span: Any) -> None:
            if self.on:
                self.inner.on_end(span)

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # OTel allows one provider per process: add to it if set
        provider = TracerProvider(resource=Resource.create({"service.name": "airflow-agentvault"}))
        trace.set_tracer_provider(provider)
    processor = WhileOn(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    provider.add_span_processor(processor)
    try:
        yield
    finally:
        processor.on = False


@contextlib.contextmanager
def exporting_here(url: str) -> Iterator[dict[str, str]]:
    """This process (the agents it runs) exports to the viewer at ``url`` while the block runs."""
    from agentvault_stack.agent import telemetry

    exported = otel_env(url)
    saved = {key: os.environ.get(key) for key in exported}
    os.environ.update(exported)
    try:
        yield exported
    finally:
        telemetry.stop_exporting(url)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def for_demo(enabled: bool) -> Iterator[dict[str, str]]:
    """``--trace``: start the viewer, send this process's agents' spans to it, and give Airflow's settings."""
    if not enabled:
        yield {}
        return
    print("Starting the trace viewer (Arize Phoenix; installed on first use) ...", flush=True)
    with running_viewer() as viewer, exporting_here(viewer.url) as exported:
        print(f"Traces: {viewer.url} (each pipeline run is one trace)", flush=True)
        yield {**AIRFLOW_TRACING, **exported}
