"""Shared test setup: an isolated Airflow home per session and the wire captures."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="agentvault-tests-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

