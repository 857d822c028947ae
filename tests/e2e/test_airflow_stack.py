"""End to end: a real scheduler, triggerer, dag-processor and API server run the smoke DAG.

One stack for the module (start-up is the expensive part, ~10-15 s on 2 cores); the last
test stops it and checks that no process of it is left.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from agentvault_stack.testing import AirflowStack, AirflowStackError
from agentvault_stack.testing.airflow_stack import find_stack_processes

pytestmark = pytest.mark.integration

DAGS_SRC = Path(__file__).parent / "dags"
DAG_ID = "e2e_smoke"
# Mirrors tests/e2e/dags/e2e_smoke.py (not imported: it would import Airflow in this process).
LOG_MARKER = "e2e-smoke: producing value"
RUN_CONF = {"note": "from-e2e-test"}
EXPECTED_XCOM = {"answer": 42, "source": "e2e_smoke", "conf": RUN_CONF}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("airflow-stack")
    dags = base / "dags"  # a copy, so tests may add files to it
    shutil.copytree(DAGS_SRC, dags, ignore=shutil.ignore_patterns("__pycache__"))
    t0 = time.monotonic()
    with AirflowStack(home=base / "home", dags_folder=dags) as running:
        running.timings["start_to_ready_total"] = time.monotonic() - t0
        yield running
    # Also covered (with assertions) by test_stop_leaves_no_process.
    assert running.stack_processes() == []


@pytest.fixture(scope="module")
def smoke_run(stack: AirflowStack) -> str:
    stack.wait_for_dag(DAG_ID, timeout=60)
    run_id = stack.trigger(DAG_ID, RUN_CONF)
    print(f"\n{DAG_ID} run: {stack.run_ui_url(DAG_ID, run_id)}")
    state = stack.wait_for_run(DAG_ID, run_id, timeout=180)
    assert state == "success", (
        f"run ended {state}: {stack.task_states(DAG_ID, run_id)}\n"
        f"{stack.task_log(DAG_ID, run_id, 'wait_1s')}\n{stack.diagnostics()}"
    )
    return run_id


def test_failed_start_leaves_no_process(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    stack = AirflowStack(home=tmp_path / "home", dags_folder=tmp_path / "dags", ready_timeout=1.0)
    with pytest.raises(AirflowStackError, match="not ready after"):
        with stack:
            pytest.fail("__enter__ should have raised")
    assert len(stack.components) == 4
    assert stack.stack_processes() == []
    for comp in stack.components.values():
        assert not _alive(comp.popen.pid), comp.name


def test_watchdog_cleans_up_after_a_killed_test_process(tmp_path: Path) -> None:
    """If the process owning the stack dies without stop(), the watchdog sweeps the stack,
    including processes that renamed themselves (setproctitle hides their environment)."""
    (tmp_path / "dags").mkdir()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from agentvault_stack.testing import AirflowStack
                stack = AirflowStack({str(tmp_path / "home")!r}, {str(tmp_path / "dags")!r}).start()
                print(stack.stack_id, *sorted(stack._session_ids()), flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        stack_id, *sids = child.stdout.readline().split()
        session_ids = [int(sid) for sid in sids]
        assert len(session_ids) == 4, "child did not start a stack"

        def titles() -> str:
            return " | ".join(_cmdline(p) for p in find_stack_processes(stack_id, session_ids))

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "api_server" in titles() and "LocalExecutor" in titles():
                break
            time.sleep(0.2)
        assert "api_server" in titles() and "LocalExecutor" in titles(), titles()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    deadline = time.monotonic() + 20
    while find_stack_processes(stack_id, session_ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert find_stack_processes(stack_id, session_ids) == [], titles()


def test_stack_is_healthy(stack: AirflowStack) -> None:
    health = stack.health()
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[component]["status"] == "healthy", health
    assert stack.api_url.startswith("http://127.0.0.1:")


def test_smoke_run_succeeds(stack: AirflowStack, smoke_run: str) -> None:
    assert stack.task_states(DAG_ID, smoke_run) == {"wait_1s": "success", "produce": "success"}


def test_sensor_went_through_the_triggerer(stack: AirflowStack, smoke_run: str) -> None:
    evidence = stack.deferral_evidence(DAG_ID, smoke_run, "wait_1s")
    lines = "\n".join(evidence["defer_log_lines"])
    assert evidence["deferred"], evidence
    # The worker deferred the task...
    assert "Pausing task as DEFERRED" in lines, lines
    # ...the triggerer ran the trigger and fired its event (logged in the task's trigger log)...
    assert evidence["trigger_log_files"], evidence
    assert "Trigger fired event" in lines, lines
    # ...and the task was resumed in the same try (a deferral is not a new try).
    tries = stack.task_tries(DAG_ID, smoke_run, "wait_1s")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "success")], tries
    # States seen while polling (DEFERRED lasts ~1-2 s, so it is normally among them, but
    # polling is not proof either way; the logs above are).
    observed = evidence["observed_states"]
    assert observed and observed[-1] == "success", observed
    print(f"\nwait_1s states seen while polling: {observed}")


def test_xcom_of_the_python_task(stack: AirflowStack, smoke_run: str) -> None:
    assert stack.xcom(DAG_ID, smoke_run, "produce") == EXPECTED_XCOM


def test_task_log_has_the_task_line(stack: AirflowStack, smoke_run: str) -> None:
    from_files = stack.task_log(DAG_ID, smoke_run, "produce")
    assert LOG_MARKER in from_files, from_files
    from_api = stack.task_log_api(DAG_ID, smoke_run, "produce", try_number=1)
    assert LOG_MARKER in from_api, from_api


def test_import_errors_are_reported(stack: AirflowStack) -> None:
    broken = stack.dags_folder / "e2e_broken.py"
    broken.write_text(
        "from airflow.sdk import dag\n"
        "import this_module_does_not_exist_e2e  # noqa\n"
        "@dag(dag_id='e2e_broken', schedule=None)\n"
        "def e2e_broken():\n    pass\n"
        "e2e_broken()\n"
    )
    try:
        with pytest.raises(AirflowStackError, match="this_module_does_not_exist_e2e"):
            stack.wait_for_dag("e2e_broken", timeout=60)
    finally:
        broken.unlink()


def test_stop_leaves_no_process(stack: AirflowStack, smoke_run: str) -> None:
    pids = [c.popen.pid for c in stack.components.values()]
    titles = " | ".join(_cmdline(p) for p in stack.stack_processes())
    # Renamed processes (setproctitle) included: they are what a marker-only sweep misses.
    assert "api_server" in titles and "LocalExecutor" in titles, titles
    stack.stop()
    stack.stop()  # idempotent
    assert stack.stack_processes() == []
    for pid in pids:
        assert not _alive(pid), pid
    timings = {k: round(v, 2) for k, v in stack.timings.items()}
    print(f"\nAirflowStack timings (s): {timings}")


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return "?"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
