"""The real servers of the interop matrix, and the rows (server x dialect) we test them through.

Three processes on 127.0.0.1, each started on first use and stopped at the end of the session:

* ``a2a-sdk-1.3.0``: ``tests/interop/a2a_v1_agent.py`` on ``a2a-sdk[http-server]==1.3.0`` from the
  project's own venv (the SDK installs beside Airflow 3.3.2); rows JSON-RPC 1.0, JSON-RPC 0.3 (the SDK's
  compat adapter, same path) and HTTP+JSON 1.0;
* ``a2a-sdk-0.3.26``: ``tests/thirdparty/a2a_v03/agent_app.py`` from its own cached venv
  (``tests/thirdparty/sdk_venv.py``);
* ``agentvault-sdk``: ``tests/thirdparty/agentvault_sdk/agent_app.py`` (agentvault-server-sdk 0.1.1) from
  its own cached venv, as in ``tests/integration/conftest.py``.

All three agents are steered by the same words in the message text (``sleep=``, ``delay=``, ``fail``,
``input_required``; ``chunks=`` on the A2A ones).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
_THIRDPARTY = _TESTS / "thirdparty"
if str(_THIRDPARTY) not in sys.path:
    sys.path.insert(0, str(_THIRDPARTY))

import sdk_venv  # noqa: E402  (tests/thirdparty/sdk_venv.py)
from interop.matrix_scenarios import Server  # noqa: E402

VENV_BUILD_TIMEOUT = 240.0
SERVER_START_TIMEOUT = 60.0

A2A_FAIL_REASON = "a2a agent failed on purpose"
INPUT_PROMPT = "need more input: send a follow-up message to this task"
AGENTVAULT_FAIL_REASON = "sdk agent failed on purpose"


@dataclass(frozen=True)
class Process:
    """How to start one server process: ``cmd`` (``{port}`` filled in), its directory and ready path."""

    name: str
    script: Path
    requirements: Path | None  # None: the project's own venv
    ready_path: str


PROCESSES = {
    "a2a-sdk-1.3.0": Process("a2a-sdk-1.3.0", _TESTS / "interop" / "a2a_v1_agent.py", None,
                             "/.well-known/agent-card.json"),
    "a2a-sdk-0.3.26": Process("a2a-sdk-0.3.26", _THIRDPARTY / "a2a_v03" / "agent_app.py",
                              _THIRDPARTY / "a2a_v03" / "requirements.txt", "/.well-known/agent-card.json"),
    "agentvault-sdk": Process("agentvault-sdk", _THIRDPARTY / "agentvault_sdk" / "agent_app.py",
                              _THIRDPARTY / "agentvault_sdk" / "requirements.txt", "/agent-card.json"),
}


@dataclass(frozen=True)
class Row:
    """One row of the matrix, before its server runs (``rpc_path`` is relative to the server's base URL)."""

    key: str
    label: str
    process: str
    dialect: str
    rpc_path: str
    auto_dialect: str
    chunking: bool
    fail_reason: str

    def server(self, base_url: str) -> Server:
        return Server(self.key, self.label, self.dialect, base_url, base_url + self.rpc_path, self.auto_dialect,
                      self.chunking, self.fail_reason, INPUT_PROMPT)


ROWS = [
    Row("a2a-1.3.0-jsonrpc-1.0", "a2a-sdk 1.3.0, JSON-RPC 1.0 (`a2a-1.0`)", "a2a-sdk-1.3.0", "a2a-1.0", "/",
        "a2a-1.0", True, A2A_FAIL_REASON),
    Row("a2a-1.3.0-jsonrpc-0.3", "a2a-sdk 1.3.0, JSON-RPC 0.3 compat (`a2a-0.3`)", "a2a-sdk-1.3.0", "a2a-0.3", "/",
        "a2a-1.0", True, A2A_FAIL_REASON),
    Row("a2a-1.3.0-rest", "a2a-sdk 1.3.0, HTTP+JSON 1.0 (`a2a-rest`)", "a2a-sdk-1.3.0", "a2a-rest", "/rest",
        "a2a-rest", True, A2A_FAIL_REASON),
    Row("a2a-0.3.26-jsonrpc", "a2a-sdk 0.3.26, JSON-RPC 0.3 (`a2a-0.3`)", "a2a-sdk-0.3.26", "a2a-0.3", "/",
        "a2a-0.3", True, A2A_FAIL_REASON),
    Row("agentvault-0.1.1", "agentvault-server-sdk 0.1.1 (`agentvault`)", "agentvault-sdk", "agentvault", "/a2a/",
        "agentvault", False, AGENTVAULT_FAIL_REASON),
]
ROWS_BY_KEY = {row.key: row for row in ROWS}


class ServerStartFailure(RuntimeError):
    """A matrix server could not be built or started; the message says why."""


def start(process: Process) -> tuple[subprocess.Popen, str]:
    """Start one server process (building its venv first if it has one); returns (process, base URL)."""
    try:
        if process.requirements is None:
            python = Path(sys.executable)
        else:
            venv = sdk_venv.ensure_venv(process.name, process.requirements, python="3.11", timeout=VENV_BUILD_TIMEOUT)
            python = sdk_venv.venv_python(venv)
        return sdk_venv.start_server(
            [str(python), process.script.name, "--port", "{port}"],
            cwd=process.script.parent,
            ready_url=process.ready_path,
            timeout=SERVER_START_TIMEOUT,
            name=f"interop-{process.name}",
        )
    except (sdk_venv.VenvBuildError, sdk_venv.ServerStartError) as exc:
        raise ServerStartFailure(f"{process.name}: {exc}") from None


def stop(proc: subprocess.Popen) -> None:
    sdk_venv.stop_server(proc)
