#!/usr/bin/env bash
# Lint (ruff) over both packages (the provider and stack/), the tests, the DAGs, the benchmarks and the
# scripts; types (mypy, strict on the protocol layer). Both are configured in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
.venv/bin/ruff check airflow_agentvault stack tests dags benchmarks scripts
.venv/bin/mypy airflow_agentvault/protocol
