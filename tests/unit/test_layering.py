"""The protocol layer, the reference agents and the trigger event mapping never import Airflow."""

from __future__ import annotations

import subprocess
import sys

AIRFLOW_FREE_PACKAGES = ["airflow_agentvault.protocol", "airflow_agentvault.agent"]
AIRFLOW_FREE_MODULES = ["airflow_agentvault.triggers.events", "airflow_agentvault.connection_form"]


def python_prints(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (so imports start from nothing)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_airflow_free_modules_do_not_import_airflow():
    code = (
        "import importlib, pkgutil, sys\n"
        f"names = {AIRFLOW_FREE_MODULES!r}\n"
        f"for package in {AIRFLOW_FREE_PACKAGES!r}:\n"
        "    module = importlib.import_module(package)\n"
        "    names += [info.name for info in pkgutil.walk_packages(module.__path__, package + '.')\n"
        "              if not info.name.endswith('__main__')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert len(names) > 30, names\n"
        "leaked = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(leaked)\n"
    )
    assert python_prints(code).strip() == "[]"


def test_building_stages_loads_only_what_a_sync_task_runs():
    """Every task process parses its DAG file: the trigger module (and Airflow's trigger base) loads on deferral."""
    code = (
        "import sys\n"
        "import airflow_agentvault.pipelines.stage, airflow_agentvault.pipelines.report\n"
        "from airflow_agentvault.protocol.client import AgentClient\n"
        "AgentClient('http://127.0.0.1:1/a2a/')\n"
        "print(sorted(m for m in sys.modules if m.startswith('airflow_agentvault.')))\n"
    )
    loaded = python_prints(code)
    assert "'airflow_agentvault.protocol.client'" in loaded
    assert "'airflow_agentvault.triggers.agentvault'" not in loaded
