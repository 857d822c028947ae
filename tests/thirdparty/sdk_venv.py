"""Run third-party servers (real SDK agents) from their own cached virtual environments.

Some SDKs cannot share an environment with Airflow (``agentvault-server-sdk 0.1.1`` pins
``fastapi<0.112``; Airflow 3.3 needs ``fastapi>=0.129``). Integration tests therefore build a
separate venv per SDK with ``uv`` and start the SDK's server as a subprocess on 127.0.0.1.

Generic on purpose, and free of pytest so any fixture or script can use it:

* :func:`ensure_venv` builds (or reuses) ``<repo>/.cache/thirdparty-venvs/<name>-<hash>``;
* :func:`venv_python` gives the interpreter inside it;
* :func:`start_server` starts a command on a free loopback port and waits, bounded, until a
  URL answers;
* :func:`stop_server` terminates the server's process group, then kills it, bounded.

Environment overrides: ``THIRDPARTY_VENV_CACHE`` (cache root), ``UV`` (path of the uv binary).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Iterator, Mapping, Sequence

__all__ = [
    "REPO_ROOT",
    "ServerStartError",
    "VenvBuildError",
    "cache_root",
    "ensure_venv",
    "free_port",
    "log_tail",
    "start_server",
    "stop_server",
    "venv_python",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
_MARKER = ".thirdparty-venv-complete"


class VenvBuildError(RuntimeError):
    """Building a third-party virtual environment failed."""


class ServerStartError(RuntimeError):
    """A third-party server did not become ready in time (or exited)."""


# --------------------------------------------------------------------------------------------
# Virtual environments
# --------------------------------------------------------------------------------------------
def cache_root() -> Path:
    """Directory that holds the cached venvs and the server logs (``.cache/`` is gitignored)."""
    override = os.environ.get("THIRDPARTY_VENV_CACHE")
    return Path(override) if override else REPO_ROOT / ".cache" / "thirdparty-venvs"


def venv_python(venv_dir: Path) -> Path:
    """The interpreter of a venv made by :func:`ensure_venv`."""
    if os.name == "nt":  # pragma: no cover - the project runs on POSIX
        return Path(venv_dir) / "Scripts" / "python.exe"
    return Path(venv_dir) / "bin" / "python"


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        raise VenvBuildError("`uv` is not on PATH (set UV=/path/to/uv); it builds the third-party venvs")
    return uv


def _clean_env() -> dict[str, str]:
    # A surrounding `uv run` / activated venv must not leak into the build of another venv.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH"}}
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def _run(cmd: Sequence[str], timeout: float, what: str) -> None:
    try:
        proc = subprocess.run(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=_clean_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        raise VenvBuildError(f"{what} timed out after {timeout:.0f}s: {' '.join(cmd)}\n{out[-4000:]}") from exc
    if proc.returncode != 0:
        raise VenvBuildError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}")


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Exclusive lock so that concurrent test sessions (or xdist workers) build a venv once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX: no locking
            yield
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise VenvBuildError(f"timed out after {timeout:.0f}s waiting for build lock {path}") from exc
                time.sleep(0.2)  # lock held by another builder; re-try the lock until the deadline
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_venv(
    name: str,
    requirements_file: str | os.PathLike[str],
    *,
    python: str = "3.11",
    timeout: float = 600.0,
    root: Path | None = None,
) -> Path:
    """Return a venv with ``requirements_file`` installed, building it once and caching it.

    The venv lives in ``<cache>/<name>-<hash>`` where the hash covers the requirements text and the
    Python version, so editing the pins yields a fresh venv. It is reused only when the marker file
    written as the very last build step exists; an interrupted build is wiped and redone.
    ``timeout`` bounds the whole build (lock wait, ``uv venv`` and ``uv pip install``).
    """
    req_path = Path(requirements_file).resolve()
    req_bytes = req_path.read_bytes()
    digest = hashlib.sha256(python.encode() + b"\0" + req_bytes).hexdigest()[:16]
    base = Path(root) if root is not None else cache_root()
    venv_dir = base / f"{name}-{digest}"
    marker = venv_dir / _MARKER

    def complete() -> bool:
        return marker.is_file() and venv_python(venv_dir).exists()

    if complete():
        return venv_dir

    deadline = time.monotonic() + timeout
    with _file_lock(base / f"{name}-{digest}.lock", timeout):
        if complete():  # built by someone else while we waited for the lock
            return venv_dir
        if venv_dir.exists():
            shutil.rmtree(venv_dir)
        started = time.monotonic()
        uv = _uv()
        _run(
            [uv, "venv", "--quiet", "--python", python, str(venv_dir)],
            max(1.0, deadline - time.monotonic()),
            f"creating venv {venv_dir.name}",
        )
        _run(
            [uv, "pip", "install", "--python", str(venv_python(venv_dir)), "-r", str(req_path)],
            max(1.0, deadline - time.monotonic()),
            f"installing {req_path.name} into {venv_dir.name}",
        )
        info = {
            "name": name,
            "requirements": str(req_path),
            "sha256": hashlib.sha256(req_bytes).hexdigest(),
            "python": python,
            "build_seconds": round(time.monotonic() - started, 2),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, marker)  # the marker appears atomically, and last
    return venv_dir


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_tail(path: str | os.PathLike[str] | None, limit: int = 4000) -> str:
    """The end of a server log, for error messages."""
    if not path:
        return ""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")


def _probe(url: str, request_timeout: float) -> tuple[bool, str]:
    """One bounded readiness probe: (ready, description of what was seen)."""
    try:
        with urllib.request.urlopen(url, timeout=request_timeout) as resp:  # noqa: S310 - loopback URL
            return 200 <= resp.status < 300, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def _prune_logs(logs: Path, max_age: float = 24 * 3600.0) -> None:
    """Delete server logs older than ``max_age`` seconds so the log directory does not grow forever."""
    cutoff = time.time() - max_age
    for path in logs.glob("*.log"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _fmt(value: str, port: int, host: str) -> str:
    return value.replace("{port}", str(port)).replace("{host}", host)


def start_server(
    cmd: Sequence[str],
    cwd: str | os.PathLike[str],
    ready_url: str,
    timeout: float = 60.0,
    *,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    log_dir: Path | None = None,
    port_attempts: int = 3,
    host: str = "127.0.0.1",
) -> tuple[subprocess.Popen, str]:
    """Start ``cmd`` on a free port of 127.0.0.1 and wait until ``ready_url`` answers 2xx.

    ``{port}`` and ``{host}`` in the items of ``cmd`` and in ``ready_url`` are replaced by the
    chosen port and host; a ``ready_url`` starting with ``/`` is taken relative to the base URL.
    The process runs in its own process group (so :func:`stop_server` also reaches its children)
    with stdout and stderr in a log file; ``proc.log_path`` names it. If the process exits before
    it is ready (e.g. it lost the port to another process), a new port is tried, up to
    ``port_attempts`` times, all within ``timeout`` seconds. Returns ``(proc, base_url)``.
    """
    if host != "127.0.0.1":
        raise ValueError("third-party test servers listen on 127.0.0.1 only")
    label = name or Path(str(cmd[-1] if cmd else "server")).stem
    logs = Path(log_dir) if log_dir is not None else cache_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _prune_logs(logs)
    deadline = time.monotonic() + timeout
    failures: list[str] = []

    for _attempt in range(max(1, port_attempts)):
        port = free_port(host)
        base_url = f"http://{host}:{port}"
        url = _fmt(ready_url, port, host)
        if url.startswith("/"):
            url = base_url + url
        argv = [_fmt(str(part), port, host) for part in cmd]
        log_path = logs / f"{label}-{port}.log"
        log_fh: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed by stop_server
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=(os.name != "nt"),
        )
        proc.log_path = log_path  # type: ignore[attr-defined]
        proc._thirdparty_log_fh = log_fh  # type: ignore[attr-defined]

        last = "no answer yet"
        while True:
            ready, last = _probe(url, request_timeout=min(1.0, max(0.05, deadline - time.monotonic())))
            if ready:
                return proc, base_url
            # Wait for the other condition we care about (the process exiting), briefly.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
            if proc.poll() is not None:
                failures.append(
                    f"port {port}: exited with code {proc.returncode}; log {log_path}:\n{log_tail(log_path)}"
                )
                stop_server(proc)
                break
            if time.monotonic() >= deadline:
                stop_server(proc)
                raise ServerStartError(
                    f"{label} did not answer {url} within {timeout:.0f}s (last: {last}); "
                    f"log {log_path}:\n{log_tail(log_path)}"
                )
        if time.monotonic() >= deadline:
            break
    raise ServerStartError(f"{label} could not be started:\n" + "\n".join(failures))


def stop_server(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Stop a server from :func:`start_server`: SIGTERM its process group, then SIGKILL, bounded."""
    if proc is None:
        return
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=timeout)
        else:
            # The leader is gone; make sure no child it left in its group survives.
            _signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
    finally:
        fh = getattr(proc, "_thirdparty_log_fh", None)
        if fh is not None and not fh.closed:
            fh.close()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # start_new_session=True made the child the leader of a group whose id is its pid: only that
    # group (the server we started and its children) is signalled.
    if os.name != "nt":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
    else:  # pragma: no cover
        with contextlib.suppress(OSError):
            proc.send_signal(sig)


if __name__ == "__main__":  # pragma: no cover - manual use: build a venv and print its path
    if len(sys.argv) != 3:
        sys.exit("usage: python sdk_venv.py NAME REQUIREMENTS_FILE")
    print(ensure_venv(sys.argv[1], sys.argv[2]))
