"""The real servers of the interop matrix, and the rows (server x dialect) we test them through.

Four processes on 127.0.0.1, each started on first use and stopped at the end of the session:

* ``a2a-sdk-1.3.0``: ``tests/interop/a2a_v1_agent.py`` on ``a2a-sdk[http-server]==1.3.0`` from the
  project's own venv (the SDK installs beside Airflow 3.3.2); rows JSON-RPC 1.0, JSON-RPC 0.3 (the SDK's
  compat adapter, same path) and HTTP+JSON 1.0;
* ``a2a-sdk-0.3.26``: ``tests/thirdparty/a2a_v03/agent_app.py`` from its own cached venv
  (``tests/thirdparty/sdk_venv.py``);
* ``agentvault-sdk``: ``tests/thirdparty/agentvault_sdk/agent_app.py`` (agentvault-server-sdk 0.1.1) from
  its own cached venv, as in ``tests/integration/conftest.py``;
* ``a2a-js-sdk``: ``tests/interop/js/agent.mjs`` on the official JavaScript SDK (``@a2a-js/sdk``, the exact
  version pinned in ``tests/interop/js/package.json`` and its lock file) under Node.js; rows JSON-RPC 1.0
  (``/jsonrpc``) and HTTP+JSON 1.0 (``/rest``). Its card lists only 1.0 interfaces, so the SDK refuses any
  call without ``A2A-Version: 1.0``. ``tests/interop/js/node_modules`` (git-ignored) is installed with
  ``npm ci`` from the lock file on first use, bounded by :data:`NPM_CI_TIMEOUT`, and reused while the lock
  file is unchanged.

All the agents are steered by the same words in the message text (``sleep=``, ``delay=``, ``fail``,
``input_required``; ``chunks=`` on the A2A ones). The a2a-sdk 1.3.0 agent also asks a person:
``ask=<n>`` (n questions, one per round, options yes/no) and ``auth_required`` (resumed by the
credential ``letmein``); ``tests/interop/test_asking_servers.py`` drives those in its three bindings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
_THIRDPARTY = _TESTS / "thirdparty"
if str(_THIRDPARTY) not in sys.path:
    sys.path.insert(0, str(_THIRDPARTY))

import sdk_venv  # noqa: E402  (tests/thirdparty/sdk_venv.py)
from interop.matrix_scenarios import Server  # noqa: E402

VENV_BUILD_TIMEOUT = 240.0
NPM_CI_TIMEOUT = 240.0
SERVER_START_TIMEOUT = 60.0
JS_DIR = _TESTS / "interop" / "js"

A2A_FAIL_REASON = "a2a agent failed on purpose"
INPUT_PROMPT = "need more input: send a follow-up message to this task"
AGENTVAULT_FAIL_REASON = "sdk agent failed on purpose"


@dataclass(frozen=True)
class Process:
    """How to start one server process: its script (run by Python or Node.js), its needs and ready path."""

    name: str
    script: Path
    requirements: Path | None  # None: the project's own venv (Python) or the folder's package-lock.json (Node)
    ready_path: str
    runtime: str = "python"  # or "node"


def js_sdk_version(package_json: Path = JS_DIR / "package.json") -> str:
    """The exact ``@a2a-js/sdk`` version pinned for the JavaScript agent."""
    return json.loads(package_json.read_text())["dependencies"]["@a2a-js/sdk"]


JS_SDK_VERSION = js_sdk_version()

PROCESSES = {
    "a2a-sdk-1.3.0": Process("a2a-sdk-1.3.0", _TESTS / "interop" / "a2a_v1_agent.py", None,
                             "/.well-known/agent-card.json"),
    "a2a-sdk-0.3.26": Process("a2a-sdk-0.3.26", _THIRDPARTY / "a2a_v03" / "agent_app.py",
                              _THIRDPARTY / "a2a_v03" / "requirements.txt", "/.well-known/agent-card.json"),
    "agentvault-sdk": Process("agentvault-sdk", _THIRDPARTY / "agentvault_sdk" / "agent_app.py",
                              _THIRDPARTY / "agentvault_sdk" / "requirements.txt", "/agent-card.json"),
    "a2a-js-sdk": Process("a2a-js-sdk", JS_DIR / "agent.mjs", None, "/.well-known/agent-card.json", runtime="node"),
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
    Row(f"a2a-js-{JS_SDK_VERSION}-jsonrpc-1.0", f"@a2a-js/sdk {JS_SDK_VERSION}, JSON-RPC 1.0 (`a2a-1.0`)", "a2a-js-sdk",
        "a2a-1.0", "/jsonrpc", "a2a-1.0", True, A2A_FAIL_REASON),
    Row(f"a2a-js-{JS_SDK_VERSION}-rest", f"@a2a-js/sdk {JS_SDK_VERSION}, HTTP+JSON 1.0 (`a2a-rest`)", "a2a-js-sdk",
        "a2a-rest", "/rest", "a2a-rest", True, A2A_FAIL_REASON),
]
ROWS_BY_KEY = {row.key: row for row in ROWS}


class ServerStartFailure(RuntimeError):
    """A matrix server could not be built or started; the message says why."""


_NPM_MARKER = ".interop-npm-ci-complete"


@contextlib.contextmanager
def _lock(path: Path, timeout: float):
    """Exclusive lock (POSIX), so that concurrent test sessions run ``npm ci`` once."""
    import fcntl

    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise ServerStartFailure(f"timed out after {timeout:.0f}s waiting for {path}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_node_modules(folder: Path = JS_DIR, timeout: float = NPM_CI_TIMEOUT) -> Path:
    """
    ``folder/node_modules`` installed by ``npm ci`` from ``folder/package-lock.json``; reused while the
    lock file is unchanged (a marker in node_modules holds its hash, written last). Returns the ``node``
    binary. Raises :class:`ServerStartFailure` when node or npm is missing, or ``npm ci`` fails or times out.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise ServerStartFailure(
            f"the @a2a-js/sdk rows need Node.js >= 20 and npm on PATH (node: {node}, npm: {npm}); "
            "e.g. apt-get install -y nodejs npm")
    lock_file = folder / "package-lock.json"
    digest = hashlib.sha256(lock_file.read_bytes()).hexdigest()
    marker = folder / "node_modules" / _NPM_MARKER

    def complete() -> bool:
        return marker.is_file() and marker.read_text().strip() == digest

    if complete():
        return Path(node)
    deadline = time.monotonic() + timeout
    with _lock(folder / ".npm-ci.lock", timeout):
        if complete():
            return Path(node)
        cmd = [npm, "ci", "--prefix", str(folder), "--no-audit", "--no-fund"]
        try:
            proc = subprocess.run(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=max(1.0, deadline - time.monotonic()), check=False)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
            raise ServerStartFailure(f"{' '.join(cmd)} timed out after {timeout:.0f}s:\n{out[-4000:]}") from None
        if proc.returncode != 0:
            raise ServerStartFailure(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(digest)
        os.replace(tmp, marker)
    return Path(node)


def start(process: Process) -> tuple[subprocess.Popen, str]:
    """Start one server process (building its venv or node_modules first); returns (process, base URL)."""
    if process.runtime == "node":
        try:
            node = ensure_node_modules(process.script.parent)
        except ServerStartFailure as exc:
            raise ServerStartFailure(f"{process.name}: {exc}") from None
        try:
            return sdk_venv.start_server(
                [str(node), process.script.name, "--port", "{port}"],
                cwd=process.script.parent,
                ready_url=process.ready_path,
                timeout=SERVER_START_TIMEOUT,
                name=f"interop-{process.name}",
            )
        except sdk_venv.ServerStartError as exc:
            raise ServerStartFailure(f"{process.name}: {exc}") from None
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
