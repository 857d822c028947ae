"""A real Airflow for end-to-end tests (long: starting, watching, querying and sweeping share one life cycle).

``dag.test()`` runs triggers inline in the test process, so it cannot prove that a
deferrable operator survives a real round trip through the triggerer. ``AirflowStack``
starts every component as its own subprocess (own process group, own log file under
``<home>/logs/<component>.log``) on a throw-away SQLite metadata DB with LocalExecutor,
bound to 127.0.0.1 only, and talks to it through the public REST API (simple auth
manager, all users admins) plus read-only queries on the SQLite file.

Everything is bounded: each wait takes a timeout, and :meth:`AirflowStack.stop` always
terminates the component process groups, kills them after a grace period, and finally
sweeps any process that still carries this stack's marker variable in its environment
(task processes run in process groups of their own, so ``killpg`` alone misses them).

This module deliberately does not import Airflow: the test process must not pick up
the stack's ``AIRFLOW_HOME`` or configuration.

Usage::

    with AirflowStack(home=tmp_path / "airflow", dags_folder=dags) as stack:
        stack.wait_for_dag("my_dag")
        run_id = stack.trigger("my_dag", {"x": 1})
        assert stack.wait_for_run("my_dag", run_id) == "success"

Demo: ``python -m agentvault_stack.testing.airflow_stack --dags-folder DIR --dag-id ID``.

Why one long module: starting, watching, querying and sweeping the stack share one life cycle (the
marker variable, the process groups, the home folder); split apart, each piece would have to know
the others' bookkeeping. The sections are marked, and nothing outside tests and the demo uses it.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import psutil
import requests

__all__ = ["AIRFLOW_WORKER_MODULES", "AirflowStack", "AirflowStackError", "PROVIDER_MODULES", "TERMINAL_RUN_STATES"]

COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
TERMINAL_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
MARKER_VAR = "AGENTVAULT_AIRFLOW_STACK_ID"
_POLL = 0.25

#: Scheduler loop and heartbeat settings that cut Airflow's gap between chained tasks from about
#: 0.9 s to about 0.15 s (``fast_scheduling=False`` keeps Airflow's defaults).
FAST_SCHEDULING = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    # A task's supervisor notices its task process has exited only when its select() times out,
    # at most this often (default 5 s): each task would hold its LocalExecutor worker ~5 s longer,
    # and the scheduler waits for it on shutdown.
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
}

#: What a task process imports before it runs a task (the worker's supervisor, the task runner, the DAG
#: bag) and the ``@task`` decorator most DAG files use: preloaded with ``preload_modules``, together
#: with the modules asked for.
AIRFLOW_WORKER_MODULES = (
    "airflow",
    "airflow.executors.local_executor",
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.bundles.manager",
    "airflow.dag_processing.bundles.local",
    "airflow.dag_processing.dagbag",
    "airflow.providers.standard.decorators.python",
)

#: The provider's modules a task of the example DAGs imports: worth preloading into the workers.
PROVIDER_MODULES = (
    "airflow_agentvault.pipelines.stage",
    "airflow_agentvault.pipelines.report",
    "airflow_agentvault.params",
    "requests",
)


class AirflowStackError(RuntimeError):
    """A component died, a wait timed out, or the REST API answered with an error
    (then ``status_code`` is the HTTP status)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<no log at {path}>"
    return "\n".join(text.splitlines()[-lines:])


def _render_log_line(line: str) -> str:
    """Render one structured (JSON) Airflow log line as ``timestamp level logger: event k=v``."""
    line = line.rstrip("\n")
    if not line.startswith("{"):
        return line
    try:
        rec = json.loads(line)
    except ValueError:
        return line
    if not isinstance(rec, dict):
        return line
    ts = rec.pop("timestamp", "")
    level = rec.pop("level", "")
    logger = rec.pop("logger", "")
    event = rec.pop("event", "")
    extra = " ".join(f"{k}={v}" for k, v in rec.items())
    head = " ".join(str(p) for p in (ts, level.upper() if isinstance(level, str) else level) if p)
    where = f" {logger}:" if logger else ""
    return f"{head}{where} {event}{' ' + extra if extra else ''}".strip()


@dataclass
class _Component:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)
    #: what it runs (scheduler, triggerer, worker, ...): several components may share a kind
    kind: str = ""
    #: variables of this component only, on top of the stack's
    env: dict[str, str] = field(default_factory=dict)
    #: stopped on purpose (:meth:`AirflowStack.kill_component`): not an error for check_alive
    killed: bool = False

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class AirflowStack:
    """A real Airflow 3 deployment in subprocesses, for end-to-end tests and demos.

    :param home: fresh directory used as ``AIRFLOW_HOME`` (created if missing). The SQLite
        DB is ``home/airflow.db``; component logs are ``home/logs/<component>.log``; task
        logs are under ``home/logs/dag_id=...``.
    :param dags_folder: folder the dag-processor parses.
    :param extra_env: extra variables for every component (e.g. ``AIRFLOW_CONN_*`` URIs or
        JSON, ``AIRFLOW_VAR_*``, ``AIRFLOW__SECTION__KEY`` overrides). Applied last.
    :param connections: connections to create in the metadata database, ``{conn_id: fields}``
        with the fields of an ``AIRFLOW_CONN_*`` JSON value (``conn_type``, ``host``, ``login``,
        ``password``, ``schema``, ``port``, ``extra`` as a dict or JSON text, ``description``),
        or that JSON as text. Unlike ``AIRFLOW_CONN_*`` variables they are listed on the UI's
        Connections page, where they can be edited and tested (Test connection needs
        ``AIRFLOW__CORE__TEST_CONNECTION=Enabled`` in ``extra_env``). They are created through
        the REST API as soon as the stack is ready (:meth:`wait_ready`), before any run starts.
    :param api_port: port of the API server on 127.0.0.1; a free one is picked if None.
    :param parallelism: ``[core] parallelism`` - LocalExecutor forks this many workers up front.
    :param ready_timeout: seconds ``__enter__`` waits for :meth:`wait_ready`.
    :param stop_grace: seconds between SIGTERM and SIGKILL in :meth:`stop`.
    :param stop_patience: seconds after the first SIGTERM before the scheduler gets a second
        one ("don't wait for running tasks") and the triggerer a SIGKILL.
    :param pycache_dir: where components cache bytecode when the installed Airflow has no
        ``__pycache__`` (default: ``<tmp>/airflow-stack-pycache-<uid>``; False: leave alone).
    :param reuse_migrated_db: copy the DB migrated by an earlier stack of this process
        instead of running ``airflow db migrate`` again (saves ~4-6 s per stack).
    :param fast_scheduling: apply :data:`FAST_SCHEDULING`; False runs the scheduler with Airflow's
        default loop and heartbeat timing (benchmarks compare both).
    """

    # {airflow executable: path of a freshly migrated DB}, shared by the stacks of a process
    _migrated_templates: dict[str, Path] = {}

    def __init__(
        self,
        home: Path | str,
        dags_folder: Path | str,
        extra_env: Mapping[str, str] | None = None,
        api_port: int | None = None,
        *,
        parallelism: int = 4,
        ready_timeout: float = 120.0,
        stop_grace: float = 10.0,
        stop_patience: float = 2.0,
        pycache_dir: Path | str | bool | None = None,
        reuse_migrated_db: bool = True,
        fast_scheduling: bool = True,
        preload_modules: Iterable[str] = (),
        connections: Mapping[str, Mapping[str, Any] | str] | None = None,
    ) -> None:
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.extra_env = {str(k): str(v) for k, v in (extra_env or {}).items()}
        self.api_port = api_port or free_port()
        self.parallelism = parallelism
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.stop_patience = stop_patience
        self.pycache_dir = pycache_dir
        self.reuse_migrated_db = reuse_migrated_db
        self.fast_scheduling = fast_scheduling
        self.preload_modules = tuple(preload_modules)
        self.connections = {str(k): _connection_fields(k, v) for k, v in (connections or {}).items()}
        self._connections_created = False
        self.stack_id = uuid.uuid4().hex
        self.logs_dir = self.home / "logs"
        self.db_path = self.home / "airflow.db"
        self.bin_dir = Path(sys.prefix) / "bin"
        self.airflow_bin = self._find_airflow()
        self.env = self._build_env()
        self.components: dict[str, _Component] = {}
        self.timings: dict[str, float] = {}
        # task states seen while polling: {(dag_id, run_id): {task_id: [state, ...]}}
        self.observed_states: dict[tuple[str, str], dict[str, list[str]]] = {}
        self._http = requests.Session()
        self._http.trust_env = False  # never route loopback calls through a proxy
        self._token: str | None = None
        self._execution_api_warm = False
        self._watchdog: subprocess.Popen | None = None
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------------ setup

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _find_airflow(self) -> str:
        candidate = self.bin_dir / "airflow"
        if candidate.exists():
            return str(candidate)
        import shutil

        found = shutil.which("airflow")
        if not found:
            raise AirflowStackError("cannot find the `airflow` executable (venv bin or PATH)")
        return found

    def _build_env(self) -> dict[str, str]:
        # Start from the caller's environment minus any Airflow configuration, so a developer's
        # shell (AIRFLOW_HOME, AIRFLOW__*, AIRFLOW_CONN_*) cannot leak into the stack.
        env = {
            k: v
            for k, v in os.environ.items()
            if not (
                k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
                or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")
            )
        }
        path = env.get("PATH", os.defpath)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{path}"
        no_proxy = ",".join(filter(None, ["127.0.0.1,localhost", env.get("NO_PROXY", "")]))
        env["NO_PROXY"] = env["no_proxy"] = no_proxy
        env["PYTHONUNBUFFERED"] = "1"
        env[MARKER_VAR] = self.stack_id
        base = self.api_url
        fernet = base64.urlsafe_b64encode(os.urandom(32)).decode()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__FERNET_KEY": fernet,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # Serialized DAGs are rewritten at most this often (default 30 s): tests that edit
                # a DAG file want the change visible quickly.
                "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": f"{base}/",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
                # >= 64 bytes, or PyJWT warns for HS512 on every token.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        if self.fast_scheduling:
            env.update(FAST_SCHEDULING)
        if self.preload_modules:
            env["AIRFLOW__CORE__MP_START_METHOD"] = "forkserver"
            env["AIRFLOW__CORE__MP_FORKSERVER_PRELOAD"] = ",".join(AIRFLOW_WORKER_MODULES + self.preload_modules)
        self._bytecode_env(env)
        env.update(self._deployment_env())
        env.update(self.extra_env)
        return env

    def _deployment_env(self) -> dict[str, str]:
        """Settings a subclass deploys differently (executor, database); applied before ``extra_env``."""
        return {}

    def _component_specs(self) -> list[tuple[str, str, list[str], dict[str, str]]]:
        """``(name, kind, argv, env)`` of each component to start; a subclass may start more."""
        return [(name, name, self._argv(name), {}) for name in COMPONENTS]

    def _bytecode_env(self, env: dict[str, str]) -> None:
        """Let the components cache bytecode.

        Every component is a fresh ``airflow`` process. Without ``.pyc`` files (uv does not
        compile by default, and PYTHONDONTWRITEBYTECODE stops Python from caching) each one
        recompiles Airflow on start: ~3.6 s instead of ~1.7 s of CPU per process, four or more
        at once on a 2-core machine. If the installed Airflow has no ``__pycache__``, point
        PYTHONPYCACHEPREFIX at a cache outside the venv and allow writing to it.
        """
        if self.pycache_dir is False:
            return
        spec = importlib.util.find_spec("airflow")  # locates the package without importing it
        locations = list(spec.submodule_search_locations or []) if spec else []
        compiled = locations and all(
            (Path(locations[0]) / sub / "__pycache__").is_dir()
            for sub in (".", "jobs", "api_fastapi/execution_api")
        )
        if compiled:
            return  # compiled install (e.g. `uv sync --compile-bytecode`): use it as is
        if self.pycache_dir is None or self.pycache_dir is True:
            cache = _default_pycache_dir()
        else:
            cache = Path(self.pycache_dir)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)

    def _argv(self, name: str) -> list[str]:
        if name == "api-server":
            return [self.airflow_bin, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)]
        if name in ("scheduler", "triggerer"):
            # Logs are read from the local files; no log-serving side process (it binds 0.0.0.0).
            return [self.airflow_bin, name, "--skip-serve-logs"]
        return [self.airflow_bin, name]

    def start(self) -> AirflowStack:
        """Migrate the DB and start all components (does not wait for them to be ready)."""
        if self._started:
            raise AirflowStackError("stack already started")
        self._started = True
        atexit.register(self.stop)
        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if not self.dags_folder.is_dir():
            raise AirflowStackError(f"dags_folder {self.dags_folder} is not a directory")
        self._migrate()
        self.timings["migrate"] = time.monotonic() - t0
        for name, kind, argv, env in self._component_specs():
            comp = _Component(name=name, argv=argv, log_path=self.logs_dir / f"{name}.log", kind=kind, env=env)
            self.components[name] = comp
            self._spawn(comp)
        self._start_watchdog()
        self._t_started = time.monotonic()
        self.timings["spawn"] = self._t_started - t0
        return self

    def _spawn(self, comp: _Component) -> None:
        if comp.log_file is not None:
            comp.log_file.close()
        comp.log_file = open(comp.log_path, "ab")  # noqa: SIM115 - closed in stop()
        comp.popen = subprocess.Popen(
            comp.argv,
            env={**self.env, **comp.env},
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=comp.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session and process group
        )
        comp.killed = False

    def kill_component(self, name: str, timeout: float = 10.0) -> None:
        """SIGKILL every process of a component's session, task processes included, as if its
        machine died; :meth:`check_alive` then ignores it until :meth:`start_component`."""
        comp = self.components[name]
        if comp.popen is None:
            return
        comp.killed = True
        sid = comp.popen.pid
        members = _session_members(sid)
        _signal_group(sid, signal.SIGKILL)
        for proc in members:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(members, timeout=timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            comp.popen.wait(timeout=timeout)

    def start_component(self, name: str) -> None:
        """Start a component again (same command and log file) after :meth:`kill_component`."""
        comp = self.components[name]
        if comp.alive():
            raise AirflowStackError(f"{name} is still running")
        self._spawn(comp)
        self._start_watchdog()  # it must know the new session

    def restart_exited(self) -> list[str]:
        """Start again each component that exited on its own, as a supervisor with ``restart: always``
        (docker-compose.yaml) would; returns their names. Airflow's scheduler, for one, exits when the
        database refuses a connection."""
        exited = [name for name, comp in self.components.items() if not comp.alive() and not comp.killed]
        for name in exited:
            self.start_component(name)
        return exited

    def _watchdog_session_ids(self) -> set[int]:
        """Sessions the watchdog kills if this process dies; a subclass may add its services'."""
        return self._session_ids()

    def _start_watchdog(self) -> None:
        """A small process that sweeps this stack if the current process dies without stop()
        (killed, os._exit, a hard timeout): no scheduler is left running after such a death."""
        if self._watchdog is not None:
            with contextlib.suppress(Exception):
                self._watchdog.kill()
                self._watchdog.wait(timeout=5)
        code = (
            "import sys; from agentvault_stack.testing.airflow_stack import _watchdog; "
            "sys.exit(_watchdog(int(sys.argv[1]), sys.argv[2], sys.argv[3]))"
        )
        sids = ",".join(str(sid) for sid in self._watchdog_session_ids())
        with open(self.logs_dir / "watchdog.log", "ab") as log:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", code, str(os.getpid()), self.stack_id, sids],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives a Ctrl-C or a kill of our process group
            )

    def _migrate(self, timeout: float = 300.0) -> None:
        template = self._migrated_templates.get(self.airflow_bin)
        if self.reuse_migrated_db and template is not None and template.exists():
            _sqlite_copy(template, self.db_path)
            return
        self._run_migrate(timeout)
        if self.reuse_migrated_db:
            # Kept in this stack's home: nothing to clean up, even if the process is killed.
            template = self.home / "migrated-template.db"
            _sqlite_copy(self.db_path, template)
            self._migrated_templates[self.airflow_bin] = template

    def _run_migrate(self, timeout: float) -> None:
        log_path = self.logs_dir / "db-migrate.log"
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.run(
                    [self.airflow_bin, "db", "migrate"],
                    env=self.env,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired as exc:
                raise AirflowStackError(
                    f"`airflow db migrate` timed out after {timeout}s:\n{_tail(log_path)}"
                ) from exc
        if proc.returncode != 0:
            raise AirflowStackError(
                f"`airflow db migrate` failed (exit {proc.returncode}):\n{_tail(log_path)}"
            )

    def __enter__(self) -> AirflowStack:
        try:
            self.start()
            self.wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- liveness

    def check_alive(self) -> None:
        """Raise :class:`AirflowStackError` (with the log tail) if any component has exited."""
        if not self._started or self._stopped:
            raise AirflowStackError("stack is not running")
        for comp in self.components.values():
            if not comp.alive() and not comp.killed:
                code = comp.popen.returncode if comp.popen else None
                raise AirflowStackError(
                    f"Airflow {comp.name} exited with code {code}; last lines of {comp.log_path}:\n"
                    f"{_tail(comp.log_path)}"
                )

    def component_log(self, name: str) -> str:
        """Full text of ``home/logs/<name>.log`` (name: api-server, scheduler, ...)."""
        path = self.logs_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def diagnostics(self, lines: int = 30) -> str:
        """Tail of every component log, for assertion messages."""
        parts = []
        for name in self.components or COMPONENTS:
            parts.append(f"--- {name} ---\n{_tail(self.logs_dir / f'{name}.log', lines)}")
        return "\n".join(parts)

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` as a dict."""
        resp = self._http.get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
        resp.raise_for_status()
        return resp.json()

    def wait_ready(self, timeout: float = 120.0) -> dict[str, Any]:
        """Poll until the API server answers and scheduler, triggerer and dag-processor are healthy.

        Returns the last health document. Raises :class:`AirflowStackError` if a component
        exits or the timeout passes.
        """
        deadline = time.monotonic() + timeout
        last: Any = None
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        while True:
            self.check_alive()
            try:
                if not self._execution_api_warm:
                    # The Task Execution API app (cadwyn) is built on its first request: ~3.5 s
                    # during which the single API worker answers nobody. Pay it as soon as the
                    # server listens, rather than inside the first task's start-up.
                    remaining = max(1.0, deadline - time.monotonic())
                    self._http.get(f"{self.api_url}/execution/health", timeout=remaining).raise_for_status()
                    self._execution_api_warm = True
                    self.timings.setdefault("api_listening", time.monotonic() - self._t_started)
                last = self.health()
                if all((last.get(c) or {}).get("status") == "healthy" for c in components):
                    self.timings.setdefault("ready", time.monotonic() - self._t_started)
                    if not self._connections_created:
                        for conn_id, fields in self.connections.items():
                            self.add_connection(conn_id, fields)
                        self._connections_created = True
                    return last
            except (requests.RequestException, ValueError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise AirflowStackError(
                    f"Airflow not ready after {timeout}s; last health: {last}\n{self.diagnostics()}"
                )
            time.sleep(_POLL)

    # ------------------------------------------------------------------ REST

    def token(self) -> str:
        """A JWT from the simple auth manager (``GET /auth/token``, all-admins mode)."""
        if self._token is None:
            resp = self._http.get(f"{self.api_url}/auth/token", timeout=10)
            if resp.status_code >= 400:
                raise AirflowStackError(f"GET /auth/token -> {resp.status_code}: {resp.text}")
            self._token = resp.json()["access_token"]
        return self._token

    def api(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        ok: Iterable[int] = (200, 201, 204),
        timeout: float = 15.0,
    ) -> Any:
        """Call the public REST API (``path`` relative to ``/api/v2``); returns decoded JSON or None."""
        url = f"{self.api_url}/api/v2/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        resp = self._http.request(method, url, json=json_body, params=params, headers=headers, timeout=timeout)
        if resp.status_code not in set(ok):
            raise AirflowStackError(
                f"{method} {url} -> {resp.status_code}: {resp.text[:2000]}", status_code=resp.status_code
            )
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    @staticmethod
    def _q(value: str) -> str:
        return quote(value, safe="")

    def add_connection(self, conn_id: str, conn: Mapping[str, Any] | str) -> dict[str, Any]:
        """Create (or replace) a connection in the metadata database through the REST API.

        ``conn`` takes the fields of an ``AIRFLOW_CONN_*`` JSON value (see ``connections``).
        Returns the connection as the REST API reports it.
        """
        body = {"connection_id": conn_id, **_connection_fields(conn_id, conn)}
        try:
            return self.api("POST", "connections", json_body=body)
        except AirflowStackError as exc:
            if exc.status_code != 409:
                raise
        return self.api("PATCH", f"connections/{self._q(conn_id)}", json_body=body)

    def get_connection(self, conn_id: str) -> dict[str, Any] | None:
        """A connection of the metadata database as the REST API reports it, or None."""
        try:
            return self.api("GET", f"connections/{self._q(conn_id)}")
        except AirflowStackError as exc:
            if exc.status_code == 404:
                return None
            raise

    def import_errors(self) -> list[dict[str, Any]]:
        """Import errors the dag-processor recorded: ``[{"filename", "stack_trace", ...}]``."""
        return self.api("GET", "importErrors", params={"limit": 100}).get("import_errors", [])

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as the REST API reports it, or None if it is not (yet) parsed."""
        try:
            return self.api("GET", f"dags/{self._q(dag_id)}")
        except AirflowStackError as exc:
            if exc.status_code == 404:
                return None
            raise

    def wait_for_dag(
        self, dag_id: str, timeout: float = 60.0, *, fail_on_import_errors: bool = True
    ) -> dict[str, Any]:
        """Poll until ``dag_id`` has been parsed; returns its REST representation.

        With ``fail_on_import_errors`` any import error recorded while the DAG is still
        missing raises at once, with the traceback(s) in the message.
        """
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        while True:
            self.check_alive()
            dag = self.get_dag(dag_id)
            if dag is not None:
                self.timings.setdefault(f"dag_parsed:{dag_id}", time.monotonic() - t0)
                return dag
            errors = self.import_errors()
            if errors and fail_on_import_errors:
                raise AirflowStackError(f"DAG {dag_id!r} not parsed; import errors:\n{_fmt_errors(errors)}")
            if time.monotonic() > deadline:
                raise AirflowStackError(
                    f"DAG {dag_id!r} not parsed after {timeout}s (dags_folder={self.dags_folder}); "
                    f"import errors: {_fmt_errors(errors) or 'none'}\n"
                    f"{_tail(self.logs_dir / 'dag-processor.log')}"
                )
            time.sleep(_POLL)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{self._q(dag_id)}", json_body={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, *, run_id: str | None = None) -> str:
        """Unpause ``dag_id`` and create a manual run with ``conf``; returns the run id."""
        self.unpause(dag_id)
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        run = self.api("POST", f"dags/{self._q(dag_id)}/dagRuns", json_body=body)
        return run["dag_run_id"]

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180.0) -> str:
        """Poll until the run reaches a terminal state (``success``/``failed``); returns it.

        While polling, every task state seen is recorded in ``observed_states``. Raises
        :class:`AirflowStackError` with task states and log tails on timeout or if a
        component dies.
        """
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        while True:
            self.check_alive()
            self._observe(dag_id, run_id)
            state = self.get_run(dag_id, run_id)["state"]
            if state in TERMINAL_RUN_STATES:
                self._observe(dag_id, run_id)
                self.timings[f"run:{dag_id}:{run_id}"] = time.monotonic() - t0
                return state
            if time.monotonic() > deadline:
                raise AirflowStackError(
                    f"run {dag_id}/{run_id} still {state!r} after {timeout}s; "
                    f"tasks: {self.task_states(dag_id, run_id)}\n{self.diagnostics()}"
                )
            time.sleep(_POLL)

    def _observe(self, dag_id: str, run_id: str) -> None:
        seen = self.observed_states.setdefault((dag_id, run_id), {})
        for key, state in self.task_states(dag_id, run_id).items():
            history = seen.setdefault(key, [])
            if not history or history[-1] != state:
                history.append(state)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """All task instances of a run (REST representation, includes mapped ones)."""
        return self.api(
            "GET",
            f"dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances",
            params={"limit": 1000},
        )["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}`` (mapped instances as ``task_id[map_index]``)."""
        out: dict[str, str | None] = {}
        for ti in self.task_instances(dag_id, run_id):
            key = ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]"
            out[key] = ti["state"]
        return out

    def task_tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of a task instance (``.../taskInstances/{task_id}/tries``), oldest first."""
        path = f"dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/{self._q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return self.api("GET", f"{path}/tries")["task_instances"]

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """The deserialized XCom value pushed by a task (default key ``return_value``)."""
        path = (
            f"dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/{self._q(task_id)}"
            f"/xcomEntries/{self._q(key)}"
        )
        entry = self.api("GET", path, params={"map_index": map_index, "deserialize": "true"})
        return entry["value"]

    def task_log_api(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """A task try's log through the REST API, one rendered line per record."""
        path = (
            f"dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/{self._q(task_id)}"
            f"/logs/{try_number}"
        )
        data = self.api("GET", path, params={"full_content": "true", "map_index": map_index})
        lines = []
        for rec in data.get("content", []):
            lines.append(_render_log_line(json.dumps(rec)) if isinstance(rec, dict) else str(rec))
        return "\n".join(lines)

    # --------------------------------------------------------- files and DB

    def task_log_files(
        self, dag_id: str, run_id: str, task_id: str, try_number: int | None = None, map_index: int = -1
    ) -> list[Path]:
        """Log files of a task (default log_filename_template), including triggerer logs
        (``attempt=N.log.trigger.<job>.log``)."""
        folder = self.logs_dir / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        pattern = f"attempt={try_number}.log*" if try_number is not None else "attempt=*.log*"
        return sorted(folder.glob(pattern))

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int | None = None, map_index: int = -1
    ) -> str:
        """Text of a task's log files (all tries unless ``try_number``), JSON records rendered
        as ``timestamp LEVEL logger: event key=value``; each file starts with a ``==> name <==``
        header."""
        parts = []
        for path in self.task_log_files(dag_id, run_id, task_id, try_number, map_index):
            text = path.read_text(errors="replace")
            rendered = "\n".join(_render_log_line(line) for line in text.splitlines())
            parts.append(f"==> {path.name} <==\n{rendered}")
        return "\n".join(parts)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only SQL query on the metadata DB; rows as dicts."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, tuple(params)).fetchall()]
        finally:
            conn.close()

    def triggers(self) -> list[dict[str, Any]]:
        """Rows of the ``trigger`` table (the triggerer deletes a trigger once no task uses it)."""
        return self.query("SELECT * FROM trigger ORDER BY id")

    def task_instance_rows(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``task_instance`` for a run (current try of each task)."""
        sql = "SELECT * FROM task_instance WHERE dag_id = ? AND run_id = ?"
        params: list[Any] = [dag_id, run_id]
        if task_id is not None:
            sql += " AND task_id = ?"
            params.append(task_id)
        return self.query(sql, params)

    def task_instance_history(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``task_instance_history`` (finished earlier tries; a deferral alone adds none)."""
        sql = "SELECT * FROM task_instance_history WHERE dag_id = ? AND run_id = ?"
        params: list[Any] = [dag_id, run_id]
        if task_id is not None:
            sql += " AND task_id = ?"
            params.append(task_id)
        return self.query(sql + " ORDER BY try_number", params)

    def deferral_evidence(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """What shows that a task went through DEFERRED in this run.

        ``observed_states``: states seen while :meth:`wait_for_run` polled;
        ``trigger_log_files``: logs the triggerer wrote for the task;
        ``defer_log_lines``: task log lines about deferring / resuming;
        ``next_method``: the method the task was resumed with (kept on the TI row);
        ``deferred``: True if any of them shows a deferral.
        """
        key = task_id if map_index < 0 else f"{task_id}[{map_index}]"
        observed = self.observed_states.get((dag_id, run_id), {}).get(key, [])
        files = self.task_log_files(dag_id, run_id, task_id, map_index=map_index)
        trigger_files = [p.name for p in files if ".trigger." in p.name]
        lines = [
            line
            for line in self.task_log(dag_id, run_id, task_id, map_index=map_index).splitlines()
            if "defer" in line.lower() or "trigger" in line.lower()
        ]
        rows = [
            r for r in self.task_instance_rows(dag_id, run_id, task_id) if r.get("map_index", -1) == map_index
        ]
        next_method = rows[0].get("next_method") if rows else None
        return {
            "observed_states": observed,
            "trigger_log_files": trigger_files,
            "defer_log_lines": lines,
            "next_method": next_method,
            "deferred": "deferred" in observed or bool(trigger_files) or bool(next_method),
        }

    def run_ui_url(self, dag_id: str, run_id: str) -> str:
        """URL of the run in the Airflow UI (open it while the stack runs)."""
        return f"{self.api_url}/dags/{self._q(dag_id)}/runs/{self._q(run_id)}"

    # ------------------------------------------------------------------ stop

    def _session_ids(self) -> set[int]:
        return {c.popen.pid for c in self.components.values() if c.popen is not None}

    def stack_processes(self) -> list[psutil.Process]:
        """Live (non-zombie) processes of this stack: members of a component's session
        (each component is a session leader; task processes change process group, not
        session) or carriers of the marker variable."""
        return find_stack_processes(self.stack_id, self._session_ids())

    def stop(self, grace: float | None = None) -> None:
        """Stop everything; idempotent, bounded (about 2 x ``grace`` + 11 s).

        1. SIGTERM to the scheduler's and dag-processor's process groups (their LocalExecutor
           workers / parsing processes go with them; SIGTERM to the scheduler alone makes it
           wait for running tasks) and to the triggerer process alone (it stops its trigger
           runner itself; signalling the runner too makes it wait a 10 s escalation).
           After ``stop_patience`` s, a second SIGTERM to the scheduler ("don't wait for
           running tasks") and SIGKILL to the triggerer's group if they are still running.
           Celery workers (a subclass's) are treated like the triggerer: their SIGTERM shutdown
           waits for running tasks.
        2. Then SIGTERM to the api-server, last so that tasks still finishing can report.
        3. SIGKILL to every component process group, whatever state it is in.
        4. Terminate, then kill, any process still carrying this stack's marker variable
           (task processes run in process groups of their own).
        """
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        grace = self.stop_grace if grace is None else grace
        t0 = time.monotonic()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        with contextlib.suppress(Exception):
            self._http.close()  # no keep-alive connection holding up the server's shutdown
        comps = {name: c for name, c in self.components.items() if c.popen is not None}
        try:
            first = [c for c in comps.values() if c.kind in ("scheduler", "dag-processor", "triggerer", "worker")]
            for comp in first:
                if comp.kind in ("triggerer", "worker"):
                    _signal_pid(comp.popen.pid, signal.SIGTERM)
                else:
                    _signal_group(comp.popen.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            # The scheduler takes a second SIGTERM as "don't wait for running tasks"; the
            # triggerer, even on a second one, waits 5-10 s for its runner: SIGKILL it instead.
            second = time.monotonic() + min(self.stop_patience, grace)
            for comp in first:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    comp.popen.wait(timeout=max(0.0, second - time.monotonic()))
            for comp in first:
                if comp.popen.poll() is None:
                    if comp.kind in ("triggerer", "worker"):
                        # Even forced, it waits seconds for its runner; nothing to save there.
                        _signal_group(comp.popen.pid, signal.SIGKILL)
                    else:
                        _signal_pid(comp.popen.pid, signal.SIGTERM)
            for comp in first:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    comp.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
                self.timings[f"stop:{comp.name}"] = time.monotonic() - t0
            api = next((c for c in comps.values() if c.kind == "api-server"), None)
            if api is not None:
                _signal_pid(api.popen.pid, signal.SIGTERM)
                deadline = time.monotonic() + grace
                # uvicorn is done once it logs this; the interpreter then spends seconds in
                # its final garbage collection, which the SIGKILL below cuts short.
                while api.popen.poll() is None and time.monotonic() < deadline:
                    if "Finished server process" in _tail(api.log_path, 5):
                        break
                    time.sleep(0.05)
                self.timings["stop:api-server"] = time.monotonic() - t0
        finally:
            for comp in comps.values():
                # The leader may be gone while group members remain: signal the group regardless.
                _signal_group(comp.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    comp.popen.wait(timeout=5)
            _kill_stack(self.stack_id, self._session_ids(), grace=3.0)
            for comp in comps.values():
                if comp.log_file is not None:
                    with contextlib.suppress(Exception):
                        comp.log_file.close()
            if self._watchdog is not None:
                with contextlib.suppress(Exception):
                    self._watchdog.kill()
                    self._watchdog.wait(timeout=5)
            self.timings["stop"] = time.monotonic() - t0


def find_stack_processes(stack_id: str, session_ids: Iterable[int] = ()) -> list[psutil.Process]:
    """Live (non-zombie) processes in one of ``session_ids`` or whose environment carries
    ``MARKER_VAR=stack_id``.

    The marker alone is not enough: setproctitle (api-server, LocalExecutor workers, task
    supervisors) rewrites the memory /proc/<pid>/environ shows, so those lose it. Session
    ids stay valid after the leader exits: Linux does not reuse a pid while a session or
    process group still uses it as its id.
    """
    sids = set(session_ids)
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if sids and os.getsid(proc.pid) in sids:
                found.append(proc)
            elif proc.environ().get(MARKER_VAR) == stack_id:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _kill_stack(stack_id: str, session_ids: Iterable[int], grace: float) -> None:
    procs = find_stack_processes(stack_id, session_ids)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)


def _watchdog(parent_pid: int, stack_id: str, session_ids: str, poll: float = 1.0) -> int:
    """Wait for ``parent_pid`` to end, then terminate/kill every process of the stack."""
    sids = [int(sid) for sid in session_ids.split(",") if sid]
    try:
        parent = psutil.Process(parent_pid)
        while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
            time.sleep(poll)
    except psutil.Error:
        pass
    for sid in sids:  # leaders first, so they do not start new work
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(sid, signal.SIGKILL)
    _kill_stack(stack_id, sids, grace=3.0)
    return 0


def _default_pycache_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"airflow-stack-pycache-{uid}"


def _sqlite_copy(src: Path, dst: Path) -> None:
    """Consistent copy of a SQLite DB (WAL included) through the backup API."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _session_members(sid: int) -> list[psutil.Process]:
    """Live processes of session ``sid`` (task processes leave the process group, not the session)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


_CONNECTION_FIELDS = frozenset({"conn_type", "description", "host", "login", "password", "schema", "port", "extra"})


def _connection_fields(conn_id: str, conn: Mapping[str, Any] | str) -> dict[str, Any]:
    """The REST API's connection body for an ``AIRFLOW_CONN_*``-style JSON value (dict or text)."""
    fields = json.loads(conn) if isinstance(conn, str) else dict(conn)
    if not isinstance(fields, dict) or not fields.get("conn_type"):
        raise ValueError(f"connection {conn_id!r}: expected JSON fields with a conn_type, got {conn!r}")
    unknown = set(fields) - _CONNECTION_FIELDS
    if unknown:
        raise ValueError(f"connection {conn_id!r}: unknown fields {sorted(unknown)}")
    if isinstance(fields.get("extra"), Mapping):
        fields["extra"] = json.dumps(fields["extra"])
    return fields


def _fmt_errors(errors: list[dict[str, Any]]) -> str:
    return "\n".join(f"{e.get('filename')}:\n{e.get('stack_trace')}" for e in errors)


def main(argv: list[str] | None = None) -> int:
    """Demo: start a stack, trigger a DAG, print the UI URL and the outcome."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags-folder", required=True, type=Path)
    parser.add_argument("--dag-id", required=True)
    parser.add_argument("--conf", default="{}", help="JSON run conf")
    parser.add_argument("--home", type=Path, help="AIRFLOW_HOME (default: a new temp dir)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the components")
    parser.add_argument("--connection", action="append", default=[], metavar="ID=JSON",
                        help="a connection to create in the metadata DB (JSON as in AIRFLOW_CONN_*)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep running after the run until Ctrl-C")
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="airflow-stack-"))
    extra = dict(item.split("=", 1) for item in args.env)
    connections = dict(item.split("=", 1) for item in args.connection)
    t0 = time.monotonic()
    with AirflowStack(home, args.dags_folder, extra, args.port, connections=connections) as stack:
        print(f"Airflow ready in {time.monotonic() - t0:.1f}s at {stack.api_url} (home {home})", flush=True)
        stack.wait_for_dag(args.dag_id)
        run_id = stack.trigger(args.dag_id, json.loads(args.conf))
        print(f"triggered {run_id}: {stack.run_ui_url(args.dag_id, run_id)}", flush=True)
        state = stack.wait_for_run(args.dag_id, run_id, timeout=args.timeout)
        print(f"run {run_id} -> {state}; tasks: {stack.task_states(args.dag_id, run_id)}", flush=True)
        if args.keep:
            print("Ctrl-C to stop", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    stack.check_alive()
                    time.sleep(1)
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
