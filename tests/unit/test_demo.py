"""The demo's clear messages for the mistakes a user makes (a taken port, a skipped setup step), and what its
console shows: each stage, the first streamed lines of each answer, and why a run failed."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from agentvault_stack import demo
from agentvault_stack.demo_console import StreamEcho, failure_report

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
    """On a fresh clone the README's commands run setup first, then the job (no third command to type); only
    the test command sets up what the tests alone need (a browser, Postgres, Redis)."""
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    for name in (script, "find-uv.sh"):
        (clone / "scripts" / name).write_text((REPO / "scripts" / name).read_text())
    (clone / "scripts" / "setup.sh").write_text(
        "mkdir -p .venv/bin && printf '#!/bin/sh\\necho ran \"$@\"\\n' > .venv/bin/python"
        " && chmod +x .venv/bin/python && echo setup-done >&2\n")
    (clone / "scripts" / "setup-tests.sh").write_text("echo test-setup-done >&2\n")
    out = subprocess.run(["bash", str(clone / "scripts" / script), "topic"], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "UV": "uv"})
    assert out.returncode == 0, out.stderr
    assert "setup-done" in out.stderr and "ran -m" in out.stdout and "topic" in out.stdout
    assert ("test-setup-done" in out.stderr) == (script == "test.sh")


def test_the_setup_never_installs_the_test_tools():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert not re.search(r"apt-get|chromium|postgresql|redis|docker", setup)


def test_without_uv_the_scripts_bootstrap_it_into_a_project_venv_not_the_system_python(tmp_path):
    """No uv on PATH: python3's venv module makes .venv-tools and its own pip installs uv there."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls"
    (fake_bin / "python3").write_text(
        f"#!/bin/sh\necho \"python3 $*\" >> {calls}\n"
        "if [ \"$1 $2\" = \"-m venv\" ]; then mkdir -p \"$3/bin\"; printf '#!/bin/sh\\n"
        f"echo \"pip $*\" >> {calls}; touch \"$(dirname \"$0\")/uv\"; chmod +x \"$(dirname \"$0\")/uv\"\\n' "
        "> \"$3/bin/pip\"; chmod +x \"$3/bin/pip\"; fi\n")
    (fake_bin / "python3").chmod(0o755)
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "find-uv.sh").write_text((REPO / "scripts" / "find-uv.sh").read_text())
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(tmp_path)}
    assert subprocess.run(["sh", "-c", "command -v uv"], env=env, capture_output=True).returncode != 0
    script = "source scripts/find-uv.sh && echo \"UV=$UV\""
    for _ in range(2):  # the second time, the uv made the first time is used as it is
        out = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"UV={project}/.venv-tools/bin/uv"
    assert calls.read_text().splitlines() == [
        "python3 -m venv .venv-tools", "pip install -qq --disable-pip-version-check uv"]


def test_progress_reports_each_stage_once(capsys):
    progress = demo.Progress(started=0.0)
    progress.update({"crawl.initiate": "success", "crawl.wait_until_visible": "success", "crawl.stream": "running"})
    progress.update({"crawl.initiate": "success", "crawl.wait_until_visible": "success", "crawl.stream": "success",
                     "extract.initiate": "failed"})
    progress.update({"crawl.stream": "success", "extract.initiate": "failed"})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "crawl" in lines[0] and "done" in lines[0] and "extract" in lines[1] and "FAILED" in lines[1]


def test_progress_shows_stages_after_a_failure_as_not_run(capsys):
    progress = demo.Progress(started=0.0)
    progress.update({"crawl.stream": "failed", "extract.initiate": "upstream_failed", "extract.stream": None,
                     "publish_report": "upstream_failed"})  # told after extract, once that is settled
    progress.update({"crawl.stream": "failed", "extract.initiate": "upstream_failed",
                     "extract.stream": "upstream_failed", "publish_report": "upstream_failed"})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2:] for line in lines] == [["crawl", "FAILED"], ["extract", "not", "run"],
                                                    ["publish_report", "not", "run"]]


def _record(event: str, **fields) -> str:
    """One line of a task log as Airflow writes it (structured, JSON)."""
    return json.dumps({"timestamp": "2026-01-01T00:00:00Z", "level": "info", "event": event, **fields}) + "\n"


def test_the_console_echoes_the_first_lines_of_each_answer_as_it_streams(tmp_path, capsys):
    logs = {task: tmp_path / f"{task}.log" for task in ("crawl.stream", "crawl.initiate", "extract")}
    logs["crawl.initiate"].write_text(_record("[ref-1] assistant says: not the stream step"))
    logs["crawl.stream"].write_text(_record("Subscribing to task ref-2 events") + _record(
        "[ref-2] assistant says: Found 4 relevant documents on coral reef bleaching:") + '{"event": "[ref-2] assis')
    headers: list[str] = []
    echo = StreamEcho(lambda task: [logs[task]] if logs[task].exists() else [], 0.0,
                      header=lambda task: headers.append(task) or f"live in {task}'s log:", watch="extract")
    echo.update({"crawl.initiate": "success", "crawl.stream": "running", "extract": "queued"})
    with logs["crawl.stream"].open("a") as log:  # the half-written line is completed, more lines follow
        log.write('tant says: Marrow Reef Bleaching Survey 2024."}\n' + _record("[ref-2] assistant says: third"))
    logs["extract"].write_text(_record("[ref-3] assistant says: Extracted 13 claims."))
    echo.update({"crawl.stream": "success", "extract": "running"})
    echo.update({"crawl.stream": "success", "extract": "success"})
    out = capsys.readouterr().out.splitlines()
    assert headers == ["extract"] and out[0] == "live in extract's log:"  # printed once, before any line
    assert [line.split(None, 2)[2] for line in out[1:]] == [
        "crawl            assistant: Found 4 relevant documents on coral reef bleaching:",
        "crawl            assistant: Marrow Reef Bleaching Survey 2024.",
        "extract          assistant: Extracted 13 claims."]


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
    record = {"event": "Task failed with exception", "error_detail": [
        {"exc_type": "TaskFailedError", "exc_value": "agent failed the task: no document is about 'x'", "frames": []}]}
    assert demo.failure_reason(json.dumps(record)) == "TaskFailedError: agent failed the task: no document is about 'x'"


#: The split research pipeline's 23 tasks after its crawl stage failed.
FAILED_AT_CRAWL = {
    **{f"topic_research.{step}": "success" for step in ("initiate", "wait_until_visible", "stream", "ask_person_1")},
    "crawl.initiate": "success", "crawl.wait_until_visible": "success", "crawl.stream": "failed",
    **{f"{stage}.{step}": "upstream_failed" for stage in ("extract", "verify", "synthesize", "edit", "visualize")
       for step in ("initiate", "wait_until_visible", "stream")},
    "publish_report": "upstream_failed",
}


@pytest.mark.integration
def test_a_topic_nothing_covers_is_explained_in_the_console_in_the_crawl_agents_words():
    """The crawl agent's real answer, raised as the stream step raises it and logged as Airflow logs it."""
    from agentvault_stack.agent.research import start_research_agents
    from airflow_agentvault.protocol.client import AgentClient, TaskFollower
    from airflow_agentvault.protocol.errors import TaskFailedError
    from airflow_agentvault.protocol.models import DataPart, Message, TextPart
    from airflow_agentvault.protocol.result import outcome_of
    from airflow_agentvault.protocol.timing import Timing

    topic = "zzqx flibbertigibbet"
    with start_research_agents() as agents:
        url = agents.urls["crawl"]
        client = AgentClient(url)
        task_id = client.send(Message(role="user", parts=[TextPart(content=f"Find documents about {topic}"),
                                                            DataPart(content={"topic": topic})]))
        outcome = TaskFollower(client, Timing()).follow(task_id, deadline=time.monotonic() + 30)
        with pytest.raises(TaskFailedError) as failed:
            outcome_of(outcome.task, agent_url=url, status_message=outcome.status_message)
    assert len(FAILED_AT_CRAWL) == 23
    log = _record("Task failed with exception", error_detail=[
        {"exc_type": type(failed.value).__name__, "exc_value": str(failed.value), "frames": []}])
    report = failure_report(FAILED_AT_CRAWL, {"crawl.stream": log}.__getitem__, ui_url=None, topic=topic)
    lines = report.splitlines()
    assert f'  Your own documents: bash scripts/demo.sh "{topic}" --corpus <folder> (docs/corpus.md says what a ' \
           "file needs)" in lines
    assert lines[0] == "The run failed at the crawl stage. Its agent says:"
    words = " ".join(line.strip() for line in lines[1:] if line.startswith("    "))
    assert words.startswith(f"no document in the research corpus is about {topic!r}; it covers: battery recycling")
    assert re.search(r"No article of the general-knowledge corpus \(\d+ Wikipedia summaries\) matches it either\.$", words)
    assert "skill" not in words and "[agent http" not in words and "TaskFailedError" not in report
    assert "Not run, as each needs the stage before it: extract, verify, synthesize, edit, visualize, " \
           "publish_report." in lines
    assert "FAILED" not in report and "upstream_failed" not in report and "http" not in report
    assert "--keep-running" in lines[-1]
    while_up = failure_report(FAILED_AT_CRAWL, {"crawl.stream": log}.__getitem__, ui_url="http://127.0.0.1:8080/r")
    assert while_up.splitlines()[-1] == "The run in the Airflow UI: http://127.0.0.1:8080/r"


def test_a_failure_that_is_not_the_agents_shows_its_error_type():
    log = _record("Task failed with exception", error_detail=[
        {"exc_type": "AgentUnreachableError", "exc_value": "connection refused [agent http://127.0.0.1:1/a2a/]"}])
    report = failure_report({"crawl.stream": "failed"}, lambda task: log, ui_url=None)
    assert "The run failed at the crawl stage (crawl.stream):" in report
    assert "AgentUnreachableError: connection refused" in report


def test_the_demo_runs_the_repository_dags():
    """The demo lives in the stack package (stack/agentvault_stack) and still finds the repository's DAGs."""
    assert demo.REPO == REPO and (demo.REPO / "dags" / "research_pipeline.py").is_file()


def test_the_readmes_stage_in_20_lines_uses_the_connection_its_commands_export():
    """The snippet builds its DAG as written, and every connection it names is the one the commands export."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## A stage in 20 lines", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    exported = {name.lower() for name in re.findall(r"export AIRFLOW_CONN_(\w+)=", commands)}
    named = set(re.findall(r'agentvault_conn_id="(\w+)"', code))
    assert named and named <= exported, (named, exported)
    namespace: dict = {"__name__": "readme_snippet"}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    built = namespace["one_stage"]()
    assert {t.agentvault_conn_id for t in built.tasks} == named
    assert [t.task_id for t in built.tasks] == ["initiate", "wait_until_visible", "stream"]
