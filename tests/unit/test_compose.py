"""docker-compose.yaml cannot run here (no Docker engine); check that it agrees with the package."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from airflow_agentvault.pipelines.research import STAGE_IDS, connection_id

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_the_official_airflow_3_shape():
    assert {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-worker", "airflow-triggerer", "airflow-init"} <= set(SERVICES)
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert {SERVICES[name]["command"] for name in ("airflow-scheduler", "airflow-triggerer", "airflow-dag-processor",
                                                   "airflow-apiserver", "airflow-worker")} == {
        "scheduler", "triggerer", "dag-processor", "api-server", "celery worker"}


def test_the_image_installs_this_repository_on_the_pinned_airflow():
    dockerfile = (REPO / "Dockerfile").read_text()
    lock = (REPO / "uv.lock").read_text()
    airflow = re.search(r'name = "apache-airflow"\nversion = "([^"]+)"', lock).group(1)
    assert f"apache/airflow:{airflow}-python3.11" in dockerfile
    assert "COPY --chown=airflow:0 airflow_agentvault" in dockerfile and "COPY --chown=airflow:0 stack" in dockerfile
    assert re.search(r'pip install .*"/opt/airflow-agentvault" "/opt/airflow-agentvault/stack', dockerfile)
    assert all(SERVICES[s]["build"] == "." for s in ("airflow-scheduler", "research-agents", "reference-agent"))


def test_agent_services_run_modules_of_the_package():
    for name in ("reference-agent", "research-agents"):
        command = SERVICES[name]["command"]
        assert command[:2] == ["python", "-m"]
        assert importlib.util.find_spec(command[2]) is not None, command[2]


def test_connections_match_the_dags():
    env = SERVICES["airflow-scheduler"]["environment"]
    conns = {k[len("AIRFLOW_CONN_"):].lower(): json.loads(v) for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    assert set(conns) == {connection_id(s) for s in STAGE_IDS} | {"agentvault_default"}
    assert all(c["conn_type"] == "agentvault" for c in conns.values())
    base_port = int(SERVICES["research-agents"]["command"][-1])
    for offset, stage in enumerate(STAGE_IDS):
        assert conns[connection_id(stage)]["host"] == f"http://research-agents:{base_port + offset}/a2a/"
    assert conns["agentvault_default"]["host"].startswith("http://reference-agent:8765/")
    from airflow_agentvault.pipelines.spec import load_spec

    assert {stage.agent for stage in load_spec(REPO / "dags" / "research_pipeline.yaml").stages} <= set(conns)


def test_the_research_agents_service_command_runs_here():
    """The compose command, on loopback and a random port (servers here may not listen elsewhere)."""
    command = list(SERVICES["research-agents"]["command"])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--base-port") + 1] = "0"
    proc = subprocess.Popen([sys.executable, *command[1:]], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        lines = []
        while "READY" not in lines and time.monotonic() < deadline:
            line = proc.stdout.readline().strip()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
        assert "READY" in lines, lines
        assert sorted(line.split()[1] for line in lines if line.startswith("AGENT ")) == sorted(STAGE_IDS)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_the_compose_file_is_rendered_from_the_shared_deployment_settings():
    """docker-compose.yaml's Airflow settings, agents and replica counts come from the settings the
    distributed test stack runs with (regenerate: python -m agentvault_stack.testing.deployment)."""
    from agentvault_stack.testing import deployment

    text = (REPO / "docker-compose.yaml").read_text()
    assert deployment.render_compose(text) == text
    env = COMPOSE["x-airflow-common"]["environment"]
    assert {k: str(v) for k, v in env.items() if k in deployment.CELERY_SETTINGS} == deployment.CELERY_SETTINGS
    assert SERVICES["airflow-worker"]["deploy"]["replicas"] == deployment.WORKERS
    assert SERVICES["airflow-triggerer"]["deploy"]["replicas"] == deployment.TRIGGERERS


def test_the_compose_file_is_valid_for_docker_compose():
    """Schema check by Debian's docker-compose (needs no Docker engine); skipped where it is missing."""
    import shutil

    import pytest

    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    proc = subprocess.run([binary, "-f", str(REPO / "docker-compose.yaml"), "config", "-q"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
