"""A real trace backend for the tracing tests: Arize Phoenix on 127.0.0.1, spans read back over its REST API.

Why Phoenix: it accepts OTLP/HTTP at ``/v1/traces`` (what Airflow, the provider and the agents export),
stores the spans, shows them in a UI, and answers ``GET /v1/projects/{project}/spans``, so a test asserts
on what a real receiver stored, not on a mock. Its dependencies clash with Airflow's pins, so it runs
from its own venv (``tests/thirdparty/phoenix/requirements.txt``), built once by :mod:`sdk_venv`.

Reading back is bounded: spans are exported in batches and stored asynchronously, so :meth:`Receiver.
wait_for` reads until a predicate holds or its deadline passes, and then says what it had.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sdk_venv

REQUIREMENTS = Path(__file__).resolve().parent / "phoenix" / "requirements.txt"
START_TIMEOUT = 240.0  # Phoenix imports a lot; on a loaded 2-core machine it starts in about a minute
POLL_INTERVAL = 0.25  # between reads of the receiver's API while a bounded wait goes on


class ReceiverTimeout(AssertionError):
    """The spans a test waited for never all reached the receiver."""


@dataclass
class Receiver:
    """A running Phoenix: where to export (``otlp_endpoint``, the OTLP base URL) and how to read spans back."""

    url: str

    @property
    def otlp_endpoint(self) -> str:
        """``OTEL_EXPORTER_OTLP_ENDPOINT`` for OTLP/HTTP exporters (they add ``/v1/traces``)."""
        return self.url

    def spans(self, project: str = "default") -> list[dict[str, Any]]:
        """Every span stored for ``project``: name, context, parent_id, attributes, events, status."""
        spans: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):  # pages of 1000: a bound, never a loop
            query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            with urllib.request.urlopen(  # noqa: S310 - loopback URL
                f"{self.url}/v1/projects/{project}/spans?{urllib.parse.urlencode(query)}", timeout=30
            ) as answer:
                page = json.load(answer)
            spans.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return spans

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0,
                 project: str = "default") -> list[dict[str, Any]]:
        """The stored spans once ``predicate(spans)`` holds; :class:`ReceiverTimeout` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            spans = self.spans(project)
            if predicate(spans):
                return spans
            if time.monotonic() >= deadline:
                names = sorted({s["name"] for s in spans})
                raise ReceiverTimeout(f"after {timeout:g} s the receiver holds {len(spans)} spans: {names}")
            pause.wait(POLL_INTERVAL)  # the next read of the API, not a guess at when spans arrive


def venv() -> Path:
    """Phoenix's venv, built on first use (minutes) and cached."""
    return sdk_venv.ensure_venv("phoenix", REQUIREMENTS, timeout=900)


@contextlib.contextmanager
def running_receiver(timeout: float = START_TIMEOUT) -> Iterator[Receiver]:
    """Start Phoenix on free loopback ports with its data in a temporary folder; stop it afterwards."""
    python = sdk_venv.venv_python(venv())
    with tempfile.TemporaryDirectory(prefix="phoenix-") as work:
        env = {**os.environ, "PHOENIX_WORKING_DIR": work, "PHOENIX_HOST": "127.0.0.1",
               "PHOENIX_GRPC_PORT": str(sdk_venv.free_port()), "PHOENIX_TELEMETRY_ENABLED": "false"}
        env = {key: value for key, value in env.items() if not key.startswith("OTEL_")}
        proc, url = sdk_venv.start_server(
            [str(python), "-c", _SERVE, "{port}"], cwd=work, ready_url="/healthz", timeout=timeout, env=env, name="phoenix",
        )
        try:
            yield Receiver(url)
        finally:
            sdk_venv.stop_server(proc, timeout=15)


# ``phoenix serve`` on the port start_server chose (it fills ``{port}`` in the command, not the environment).
_SERVE = (
    "import os, sys, runpy; os.environ['PHOENIX_PORT'] = sys.argv[1]; sys.argv = ['phoenix', 'serve']; "
    "runpy.run_module('phoenix.server.main', run_name='__main__', alter_sys=True)"
)


def tree(spans: list[dict[str, Any]], trace_id: str) -> dict[str, list[dict[str, Any]]]:
    """Children by parent span id (``None``: the roots) of one trace."""
    children: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if span["context"]["trace_id"] == trace_id:
            children.setdefault(span["parent_id"], []).append(span)
    return children
