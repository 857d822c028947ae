"""The modules the workers preload exist, and the README's setting names exactly them.

A forkserver skips a preload module it cannot import without a word, so a renamed module would only
make every task slower again.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from agentvault_stack.testing.airflow_stack import AIRFLOW_WORKER_MODULES, PROVIDER_MODULES
from airflow_agentvault.compat import AIRFLOW_V_3_3_PLUS

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the forkserver preload of workers came with Airflow 3.3")

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("module", AIRFLOW_WORKER_MODULES + PROVIDER_MODULES)
def test_every_preload_module_imports(module):
    importlib.import_module(module)


def test_readme_setting_matches_the_stack():
    line = re.search(r"^mp_forkserver_preload = (.+)$", README.read_text(), re.MULTILINE)
    assert line, "README lost its mp_forkserver_preload example"
    assert line.group(1).split(",") == list(AIRFLOW_WORKER_MODULES + PROVIDER_MODULES)


def test_preload_switches_the_workers_to_a_forkserver(tmp_path):
    from agentvault_stack.testing import AirflowStack

    plain = AirflowStack(home=tmp_path / "a", dags_folder=tmp_path)
    preloaded = AirflowStack(home=tmp_path / "b", dags_folder=tmp_path, preload_modules=PROVIDER_MODULES)
    assert "AIRFLOW__CORE__MP_START_METHOD" not in plain.env
    assert preloaded.env["AIRFLOW__CORE__MP_START_METHOD"] == "forkserver"
    assert preloaded.env["AIRFLOW__CORE__MP_FORKSERVER_PRELOAD"].endswith("airflow_agentvault.params,requests")
