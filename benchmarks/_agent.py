"""Start the reference agent in its own process for a benchmark, so its CPU is not counted as ours."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator


@contextlib.contextmanager
def reference_agent(*flags: str, startup_timeout: float = 30.0) -> Iterator[str]:
    """Yield the JSON-RPC URL of a reference agent started with ``flags`` on a random loopback port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentvault_stack.agent", "--port", "0", "--log-level", "error", *flags],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError("reference agent exited during start-up")
            if line.startswith("AGENT_URL="):
                url = line.strip().split("=", 1)[1]
        if url is None:
            raise RuntimeError("reference agent did not start in time")
        yield url.rstrip("/") + "/a2a/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
