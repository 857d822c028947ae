"""The protocol layer, the reference agents and the trigger event mapping never import Airflow."""

from __future__ import annotations

import subprocess
import sys

AIRFLOW_FREE = [
    "airflow_agentvault.protocol",
    "airflow_agentvault.protocol.client",
    "airflow_agentvault.protocol.async_client",
    "airflow_agentvault.protocol.follow",
    "airflow_agentvault.protocol.async_follow",
    "airflow_agentvault.protocol.result",
    "airflow_agentvault.protocol.timing",
    "airflow_agentvault.triggers.events",
    "airflow_agentvault.connection_form",
    "airflow_agentvault.agent",
    "airflow_agentvault.agent.research",
]


def test_airflow_free_modules_do_not_import_airflow():
    code = (
        "import importlib, sys\n"
        f"for name in {AIRFLOW_FREE!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(leaked)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
