#!/usr/bin/env bash
# The unit suite and real-scheduler stages (sync and deferred) on the lowest supported Airflow, in
# .venv-airflow-3.1 built from the constraints kept in ci/airflow-3.1.txt (regenerate them with
# `uv pip compile pyproject.toml --group dev --override <(echo apache-airflow==3.1.8) --no-emit-package airflow-agentvault
# --no-emit-package airflow-agentvault-stack -o ci/airflow-3.1.txt`; this repository's two packages are installed editable).
# Usage: bash scripts/test-airflow.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find-uv.sh
version=3.1
venv=".venv-airflow-$version"
interpreter=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11.*/bin/python3.11 2>/dev/null | sort -V | tail -n 1 || true)
interpreter="${interpreter:-$(command -v python3.11)}"
if [ ! -x "$venv/bin/python" ]; then
  UV_PYTHON_DOWNLOADS=never "$UV" venv -q "$venv" --python "$interpreter" >&2
fi
"$UV" pip sync -q --python "$venv/bin/python" "ci/airflow-$version.txt" >&2
"$UV" pip install -q --python "$venv/bin/python" --no-deps -e . -e stack >&2
echo "== Airflow $("$venv/bin/python" -c 'import airflow; print(airflow.__version__)'): unit suite and real-scheduler stages" >&2
export PATH="$PWD/$venv/bin:$PATH"
exec "$venv/bin/python" -m pytest tests/unit tests/e2e/test_deferred_stage.py -q -p no:cacheprovider "$@"
