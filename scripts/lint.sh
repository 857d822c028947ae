#!/usr/bin/env bash
# Lint (ruff) over the package, the tests, the DAGs and the benchmarks; types (mypy, strict on the
# protocol layer). Both are configured in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
.venv/bin/ruff check airflow_agentvault tests dags benchmarks
.venv/bin/mypy airflow_agentvault/protocol
