"""The real servers the fault tests put the proxy in front of, each on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS / "thirdparty") not in sys.path:
    sys.path.insert(0, str(TESTS / "thirdparty"))

import sdk_venv  # noqa: E402  (tests/thirdparty/sdk_venv.py)

free_port = sdk_venv.free_port


@contextlib.contextmanager
def running(command: list[str], cwd: Path, ready_url: str, name: str) -> Iterator[str]:
    """A server process until the block ends; its base URL. A server that does not start fails the test."""
    try:
        process, base_url = sdk_venv.start_server(command, cwd=cwd, ready_url=ready_url, timeout=60.0, name=name)
    except sdk_venv.ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield base_url
    finally:
        sdk_venv.stop_server(process)


def reference_agent(*switches: str, name: str = "reference-agent") -> contextlib.AbstractContextManager[str]:
    """``python -m agentvault_stack.agent`` with ``switches`` (``--work-seconds 1`` ...)."""
    return running([sys.executable, "-m", "agentvault_stack.agent", "--port", "{port}", *switches],
                   TESTS.parent, "/agent-card.json", name)


def a2a_sdk_agent(name: str = "a2a-sdk-1.3.0") -> contextlib.AbstractContextManager[str]:
    """``tests/interop/a2a_v1_agent.py`` (a2a-sdk 1.3.0), as ``tests/interop/servers.py`` starts it."""
    return running([sys.executable, "a2a_v1_agent.py", "--port", "{port}"], TESTS / "interop",
                   "/.well-known/agent-card.json", name)


class RestartableAgent:
    """
    The reference agent as a process that a test kills (SIGKILL, as a crash or an OOM kill) and starts again
    on the same port; ``--task-store`` decides whether its tasks outlive the process.

    Every wait is bounded; :meth:`stop` (the context's end) kills what is left.
    """

    def __init__(self, *switches: str, name: str = "restartable-agent") -> None:
        self.switches = switches
        self.name = name
        self.process: Any = None
        self.port = 0
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RestartableAgent:
        self.port = free_port()
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Start the agent on its port and wait (bounded) until its card answers."""
        command = [sys.executable, "-m", "agentvault_stack.agent", "--port", str(self.port), *self.switches]
        logs = sdk_venv.cache_root() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / f"{self.name}-{self.port}-{self.starts}.log", "wb")  # noqa: SIM115 - closed in stop
        self.process = subprocess.Popen(command, cwd=TESTS.parent, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.process.log = log
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{self.name} did not start on port {self.port}: see {log.name}", pytrace=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.05)

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/agent-card.json", timeout=1.0).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL the agent's process group and wait (bounded) until it is gone."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process.log.close()
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()

    def stats(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.base_url}/_control/stats", timeout=5.0).json())
