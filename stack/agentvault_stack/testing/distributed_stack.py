"""A distributed Airflow for end-to-end tests: CeleryExecutor, Postgres, Redis, several workers and
triggerers, all processes on 127.0.0.1, no Docker.

:class:`AirflowStack` on SQLite and LocalExecutor cannot show what happens when one machine of a
deployment dies: here each Celery worker and each triggerer is its own process tree (its own session,
as on its own host, with its own hostname), so a test can kill one (:meth:`~AirflowStack.kill_component`)
and watch the others take over. The settings are :mod:`.deployment`'s, which docker-compose.yaml
uses too. Process handling, waits and REST helpers are AirflowStack's.

Usage::

    with DistributedAirflowStack(home=tmp_path / "airflow", dags_folder=dags) as stack:
        run_id = stack.trigger("my_dag")
        assert stack.wait_for_run("my_dag", run_id) == "success"
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentvault_stack.testing.airflow_stack import AirflowStack
from agentvault_stack.testing.deployment import HOSTNAME_VAR, TRIGGERERS, WORKER_CONCURRENCY, WORKERS, celery_env
from agentvault_stack.testing.services import PostgresServer, RedisServer

__all__ = ["FAULT_DETECTION", "DistributedAirflowStack"]

#: How soon Airflow notices a dead process (defaults: 30-300 s), short so fault tests stay short, long
#: enough that a busy 2-core machine does not look dead: a task whose worker stopped heartbeating is
#: failed (and retried), a trigger whose triggerer stopped heartbeating moves to a live triggerer, the
#: tasks of a dead scheduler are adopted by the next one.
FAULT_DETECTION = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
}


class DistributedAirflowStack(AirflowStack):
    """:class:`AirflowStack` on CeleryExecutor with its own Postgres and Redis.

    Components: ``api-server``, ``scheduler``, ``dag-processor``, ``worker-1`` ... ``worker-N`` (``airflow
    celery worker``) and ``triggerer-1`` ... ``triggerer-N``; each process's hostname is its name.
    ``query`` runs on Postgres and takes the same ``?`` placeholders as on SQLite.

    :param workers: Celery workers to start.
    :param triggerers: triggerers to start.
    :param fault_detection: apply :data:`FAULT_DETECTION` (False keeps Airflow's defaults).
    Other arguments are AirflowStack's (``preload_modules`` does not apply to Celery workers).
    """

    def __init__(self, home: Path | str, dags_folder: Path | str, extra_env: dict[str, str] | None = None,
                 api_port: int | None = None, *, workers: int = WORKERS, triggerers: int = TRIGGERERS,
                 fault_detection: bool = True, **kwargs: Any) -> None:
        self.workers = workers
        self.triggerers = triggerers
        self.fault_detection = fault_detection
        self.postgres = PostgresServer()
        self.redis = RedisServer()
        kwargs.setdefault("ready_timeout", 180.0)
        kwargs.setdefault("parallelism", workers * WORKER_CONCURRENCY)  # every worker slot usable
        super().__init__(home, dags_folder, extra_env, api_port, reuse_migrated_db=False, **kwargs)

    def _deployment_env(self) -> dict[str, str]:
        env = celery_env(self.postgres.url(), self.redis.url)
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "agentvault_stack.testing.deployment.component_hostname"
        if self.fault_detection:
            env.update(FAULT_DETECTION)
        return env

    def _component_specs(self) -> list[tuple[str, str, list[str], dict[str, str]]]:
        specs = [(name, kind, argv, {HOSTNAME_VAR: name})
                 for name, kind, argv, _env in super()._component_specs() if kind != "triggerer"]
        for i in range(1, self.triggerers + 1):
            specs.append((f"triggerer-{i}", "triggerer", self._argv("triggerer"), {HOSTNAME_VAR: f"triggerer-{i}"}))
        for i in range(1, self.workers + 1):
            # --skip-serve-logs: the log server binds 0.0.0.0:8793; logs are read from the shared home
            argv = [self.airflow_bin, "celery", "worker", "-H", f"worker-{i}@localhost", "--skip-serve-logs"]
            specs.append((f"worker-{i}", "worker", argv, {HOSTNAME_VAR: f"worker-{i}"}))
        return specs

    def start(self) -> DistributedAirflowStack:
        self.home.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        self.redis.start()
        super().start()
        return self

    def _migrate(self, timeout: float = 300.0) -> None:
        self._run_migrate(timeout)

    def _watchdog_session_ids(self) -> set[int]:
        services = {s.popen.pid for s in (self.postgres, self.redis) if s.popen is not None}
        return super()._watchdog_session_ids() | services

    def stop(self, grace: float | None = None) -> None:
        try:
            super().stop(grace)
        finally:
            for service in (self.redis, self.postgres):
                with contextlib.suppress(Exception):
                    service.stop()

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """A read-only query on the metadata DB (``?`` placeholders, as on SQLite); rows as dicts."""
        import psycopg2  # type: ignore[import-untyped]
        import psycopg2.extras  # type: ignore[import-untyped]

        conn = psycopg2.connect(self.postgres.url("postgresql"), connect_timeout=10)
        try:
            conn.set_session(readonly=True, autocommit=True)
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))
                return [dict(row) for row in cur.fetchall()]
        finally:
            conn.close()

    def triggerer_of(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str | None:
        """Name of the triggerer running the task's trigger now (None while no triggerer holds it)."""
        rows = self.query(
            "SELECT j.hostname FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "JOIN job j ON j.id = t.triggerer_id "
            "WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = ? AND ti.map_index = ?",
            (dag_id, run_id, task_id, map_index),
        )
        return rows[0]["hostname"] if rows else None

    def worker_of(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str | None:
        """Name of the worker that runs (or last ran) the task's current try."""
        rows = self.task_instance_rows(dag_id, run_id, task_id)
        rows = [r for r in rows if r["map_index"] == map_index]
        return rows[0]["hostname"] or None if rows else None
