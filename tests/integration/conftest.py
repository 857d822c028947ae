"""Fixtures that run real third-party agents for the integration tests.

``agentvault_sdk_agent`` starts the agent of ``tests/thirdparty/agentvault_sdk/agent_app.py``
(agentvault-server-sdk 0.1.1) from its own venv, which ``tests/thirdparty/sdk_venv.py`` builds with
uv on first use and caches in ``.cache/thirdparty-venvs/``. See ``agent_app.py`` for the words in a
message's text that steer a task (``sleep=``, ``delay=``, ``fail``, ``input_required``).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_THIRDPARTY_DIR = Path(__file__).resolve().parents[1] / "thirdparty"
if str(_THIRDPARTY_DIR) not in sys.path:
    sys.path.insert(0, str(_THIRDPARTY_DIR))

import sdk_venv  # noqa: E402  (tests/thirdparty/sdk_venv.py)

AGENTVAULT_SDK_DIR = _THIRDPARTY_DIR / "agentvault_sdk"
AGENTVAULT_SDK_REQUIREMENTS = AGENTVAULT_SDK_DIR / "requirements.txt"
VENV_BUILD_TIMEOUT = 240.0
SERVER_START_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class RunningAgent:
    """A real agent server on 127.0.0.1 started for the tests."""

    base_url: str  # http://127.0.0.1:<port>
    rpc_url: str  # <base_url>/a2a/ (JSON-RPC endpoint; note the trailing slash)
    card_url: str  # <base_url>/agent-card.json
    process: subprocess.Popen
    log_path: Path
    venv_dir: Path

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def log_tail(self, limit: int = 4000) -> str:
        return sdk_venv.log_tail(self.log_path, limit)


def _agentvault_sdk_venv() -> Path:
    try:
        return sdk_venv.ensure_venv(
            "agentvault-sdk", AGENTVAULT_SDK_REQUIREMENTS, python="3.11", timeout=VENV_BUILD_TIMEOUT
        )
    except sdk_venv.VenvBuildError as exc:
        pytest.fail(f"could not build the agentvault-server-sdk venv: {exc}", pytrace=False)


def _start_agentvault_sdk_agent(venv_dir: Path, *extra_args: str) -> RunningAgent:
    cmd = [str(sdk_venv.venv_python(venv_dir)), "agent_app.py", "--port", "{port}", *extra_args]
    try:
        proc, base_url = sdk_venv.start_server(
            cmd,
            cwd=AGENTVAULT_SDK_DIR,
            ready_url="/agent-card.json",
            timeout=SERVER_START_TIMEOUT,
            name="agentvault-sdk-agent",
        )
    except sdk_venv.ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    return RunningAgent(
        base_url=base_url,
        rpc_url=f"{base_url}/a2a/",
        card_url=f"{base_url}/agent-card.json",
        process=proc,
        log_path=Path(proc.log_path),  # type: ignore[attr-defined]
        venv_dir=venv_dir,
    )


@pytest.fixture(scope="session")
def agentvault_sdk_venv() -> Path:
    """The cached venv with agentvault-server-sdk 0.1.1 (built on first use)."""
    return _agentvault_sdk_venv()


@pytest.fixture(scope="session")
def agentvault_sdk_agent(agentvault_sdk_venv: Path) -> Iterator[RunningAgent]:
    """A real agentvault-server-sdk 0.1.1 agent (no auth, SDK exception handlers registered)."""
    agent = _start_agentvault_sdk_agent(agentvault_sdk_venv)
    try:
        yield agent
    finally:
        sdk_venv.stop_server(agent.process)


@pytest.fixture(scope="session")
def agentvault_sdk_agent_factory(agentvault_sdk_venv: Path) -> Iterator[Callable[..., RunningAgent]]:
    """Start more instances with agent options, e.g. ``factory("--api-key", "k")`` or
    ``factory("--no-error-handlers")``; all are stopped at the end of the session."""
    started: list[RunningAgent] = []

    def start(*extra_args: str) -> RunningAgent:
        agent = _start_agentvault_sdk_agent(agentvault_sdk_venv, *extra_args)
        started.append(agent)
        return agent

    try:
        yield start
    finally:
        for agent in started:
            sdk_venv.stop_server(agent.process)
