"""The real servers the fault tests put the proxy in front of, each on a free loopback port."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
