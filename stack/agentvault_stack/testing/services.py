"""Throw-away Postgres and Redis servers from Debian's packages, on 127.0.0.1 and random ports.

The distributed Airflow stack needs a database that several hosts' processes can share and a Celery
broker; Docker is not available in CI, the Debian packages are (``scripts/setup-tests.sh`` installs them).
Each server lives in its own temporary folder (data, socket, log), runs in its own session, is
stopped by PID and its folder removed. Postgres refuses to run as root: as root its processes run as
the ``postgres`` system user the package creates, and the folder belongs to that user.

Every wait is bounded by a deadline; nothing sleeps to wait for a condition without checking it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

__all__ = ["PostgresServer", "RedisServer", "ServiceError"]

_POLL = 0.1


class ServiceError(RuntimeError):
    """A server binary is missing, did not start in time, or a command failed."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"<no log at {path}>"


class _Server:
    """One server process in its own session, with a log file in its folder."""

    name = "server"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.dir: Path | None = None
        self.popen: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / f"{self.name}.log"

    def _spawn(self, argv: list[str], user: str | None = None) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _halt()
        self.popen = subprocess.Popen(
            argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, user=user, env=_clean_env(),
        )

    def _wait(self, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.popen is not None and self.popen.poll() is not None:
                raise ServiceError(f"{self.name} exited with code {self.popen.returncode}:\n{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} not ready after {timeout}s:\n{_tail(self.log_path)}")
            time.sleep(_POLL)

    def _halt(self, sig: int, grace: float) -> None:
        """``sig`` to the server, SIGKILL to its session's group after ``grace`` seconds."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop the server and remove its folder; idempotent."""
        try:
            self._halt(signal.SIGTERM, grace=10)
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError


def _clean_env() -> dict[str, str]:
    """The caller's environment without Postgres client settings that would redirect the tools."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def postgres_bin_dir() -> Path:
    """``/usr/lib/postgresql/<newest>/bin`` (Debian keeps initdb and postgres off the PATH)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name.split(".")[0]))
    if not dirs:
        raise ServiceError("Postgres is not installed (as root: apt-get install -y postgresql, or scripts/setup-tests.sh)")
    return Path(dirs[-1])


class PostgresServer(_Server):
    """A Postgres cluster in a temporary folder with database ``airflow`` (user ``airflow``, trust auth,
    listening on 127.0.0.1 only). Durability is off (fsync): it is thrown away after the tests.

    :meth:`restart` stops and starts it on the same port and data, so clients see it refuse connections.
    """

    name = "postgres"

    def __init__(self, port: int | None = None, database: str = "airflow", user: str = "airflow") -> None:
        super().__init__(port)
        self.database = database
        self.user = user
        self.bin = postgres_bin_dir()
        self.os_user = "postgres" if os.geteuid() == 0 else None

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    def url(self, scheme: str = "postgresql+psycopg2") -> str:
        return f"{scheme}://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        try:
            proc = subprocess.run(list(argv), cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout, user=self.os_user, env=_clean_env())
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"{argv[0]} timed out after {timeout}s") from exc
        if proc.returncode != 0:
            raise ServiceError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    def start(self) -> PostgresServer:
        self.dir = Path(tempfile.mkdtemp(prefix="agentvault-postgres-"))
        if self.os_user is not None:
            entry = pwd.getpwnam(self.os_user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", "--no-sync")
        self._start_server()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                  self.database)
        return self

    def _start_server(self, timeout: float = 60) -> None:
        settings = {
            "listen_addresses": "127.0.0.1", "port": str(self.port), "unix_socket_directories": str(self.dir),
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300",
        }
        argv = [str(self.bin / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self._spawn(argv, user=self.os_user)
        self._wait(self.ready, timeout)

    def ready(self) -> bool:
        """Whether it accepts connections (``pg_isready``)."""
        proc = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
             "-d", "postgres", "-t", "2"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=10, env=_clean_env(),
        )
        return proc.returncode == 0

    def stop_server(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected), keeping its data."""
        self._halt(signal.SIGINT, grace=20)
        self.popen = None

    def restart(self, timeout: float = 60) -> None:
        """Stop and start again on the same port and data: in between, connections are refused."""
        self.stop_server()
        self._start_server(timeout)

    def stop(self) -> None:
        try:
            self._halt(signal.SIGINT, grace=10)  # fast shutdown; SIGTERM waits for clients
        finally:
            super().stop()


class RedisServer(_Server):
    """A redis-server on 127.0.0.1 without persistence (``--save '' --appendonly no``)."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError("redis-server is not installed (as root: apt-get install -y redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="agentvault-redis-"))
        self._spawn([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", str(self.dir), "--daemonize", "no"])
        self._wait(self.ready, timeout)
        return self

    def ready(self) -> bool:
        """Whether it answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False
