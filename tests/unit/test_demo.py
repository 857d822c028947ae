"""The demo's clear messages for the mistakes a user makes: a taken port, a skipped setup step."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from agentvault_stack import demo

REPO = Path(__file__).resolve().parents[2]


def test_a_taken_port_is_a_message_not_a_traceback(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert demo.main(["some topic", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is taken" in err and "Traceback" not in err


@pytest.mark.parametrize("script", ["demo.sh", "test.sh"])
def test_the_commands_set_themselves_up(tmp_path, script):
    """On a fresh clone the README's commands run setup first, then the job (no third command to type)."""
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    (clone / "scripts" / script).write_text((REPO / "scripts" / script).read_text())
    (clone / "scripts" / "setup.sh").write_text(
        "mkdir -p .venv/bin && printf '#!/bin/sh\\necho ran \"$@\"\\n' > .venv/bin/python"
        " && chmod +x .venv/bin/python && echo setup-done >&2\n")
    out = subprocess.run(["bash", str(clone / "scripts" / script), "topic"], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "UV": "uv"})
    assert out.returncode == 0, out.stderr
    assert "setup-done" in out.stderr and "ran -m" in out.stdout and "topic" in out.stdout


def test_progress_reports_each_stage_once(capsys):
    progress = demo.Progress(started=0.0)
    progress.update({"crawl.initiate": "success", "crawl.wait_until_visible": "success", "crawl.stream": "running"})
    progress.update({"crawl.initiate": "success", "crawl.wait_until_visible": "success", "crawl.stream": "success",
                     "extract.initiate": "failed"})
    progress.update({"crawl.stream": "success", "extract.initiate": "failed"})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "crawl" in lines[0] and "done" in lines[0] and "extract" in lines[1] and "FAILED" in lines[1]


@pytest.mark.integration
def test_airflow_lists_the_provider():
    airflow = Path(__import__("sys").executable).parent / "airflow"
    out = subprocess.run([str(airflow), "providers", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "airflow-agentvault" in out.stdout


def test_the_demo_never_empties_a_folder_it_did_not_make(tmp_path):
    precious = tmp_path / "airflow"
    precious.mkdir()
    (precious / "airflow.cfg").write_text("mine")
    with pytest.raises(demo.DemoError, match="not made by the demo"):
        demo._fresh_home(precious)
    assert (precious / "airflow.cfg").read_text() == "mine"
    made = demo._fresh_home(tmp_path / "demo-home")
    (made / "airflow.db").write_text("old run")
    assert list(demo._fresh_home(made).iterdir()) == [made / demo.HOME_MARKER]


def test_the_readme_states_the_python_versions_the_project_declares_and_tests():
    """One list of Python versions: README, requires-python, classifiers and the CI script agree."""
    import re

    readme = (REPO / "README.md").read_text()
    stated = re.search(r"Supported: Python ([\d., and]+);", readme).group(1)
    versions = re.findall(r"3\.\d+", stated)
    project = (REPO / "pyproject.toml").read_text()
    low, high = re.search(r'requires-python = ">=(3\.\d+),<(3\.\d+)"', project).groups()
    declared = [f"3.{minor}" for minor in range(int(low.split(".")[1]), int(high.split(".")[1]))]
    classified = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', project)
    other = re.search(r"versions=\(([\d. ]+)\)", (REPO / "scripts" / "test-pythons.sh").read_text()).group(1)
    assert versions == declared == classified
    assert sorted(other.split() + ["3.11"], key=lambda v: int(v.split(".")[1])) == versions


def test_a_port_left_in_time_wait_by_a_previous_run_is_not_taken():
    """A second demo right after the first: the first's closed connections must not block the port."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
        client.close()
    demo._check_port(port)  # free again: no DemoError


def test_a_failed_run_says_why_in_the_agents_words():
    log = ('{"event": "Task failed with exception", "error_detail": "x"}\n'
           'airflow_agentvault.protocol.errors.TaskFailedError: agent failed the task: skill crawl failed: '
           "no document in the research corpus is about 'microplastics'; it covers: coral reef bleaching\n")
    assert demo.failure_reason(log).startswith("TaskFailedError: agent failed the task: skill crawl failed: no doc")
    assert demo.failure_reason("nothing typed here") == "see its log"


def test_the_reason_is_read_from_airflows_structured_log_too():
    import json

    record = {"event": "Task failed with exception", "error_detail": [
        {"exc_type": "TaskFailedError", "exc_value": "agent failed the task: no document is about 'x'", "frames": []}]}
    assert demo.failure_reason(json.dumps(record)) == "TaskFailedError: agent failed the task: no document is about 'x'"


def test_the_demo_runs_the_repository_dags():
    """The demo lives in the stack package (stack/agentvault_stack) and still finds the repository's DAGs."""
    assert demo.REPO == REPO and (demo.REPO / "dags" / "research_pipeline.py").is_file()
