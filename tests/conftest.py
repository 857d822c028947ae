"""Shared test setup: an isolated Airflow home (SQLite) per session, with this repo's dags folder."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Must happen before anything imports airflow: its config is read at import time.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="agentvault-tests-airflow-")
atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


@pytest.fixture(scope="session")
def airflow_db():
    """Create the SQLite metadata database of this session's AIRFLOW_HOME (bounded), for dag.test()."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True, env=os.environ.copy(), capture_output=True, timeout=180,
    )


@pytest.fixture(autouse=True)
def fresh_discoveries():
    """Each test reads agent cards afresh: a card found for one test's mock must not answer the next."""
    from airflow_agentvault.hooks.agentvault import forget_discoveries

    forget_discoveries()
    yield
    forget_discoveries()
