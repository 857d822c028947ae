#!/usr/bin/env bash
# The unit suite and real-scheduler stages (sync and deferred) on the older supported Airflow releases, one
# after the other, each in .venv-airflow-<version> built from the constraints kept in ci/airflow-<version>.txt.
# Regenerate a constraints file with the latest patch release of its line:
#   uv pip compile pyproject.toml --group dev --override <(echo apache-airflow==3.1.8) \
#     --no-emit-package airflow-agentvault --no-emit-package airflow-agentvault-stack -o ci/airflow-3.1.txt
#   uv pip compile pyproject.toml --group dev --override <(printf 'apache-airflow==3.2.2\nfastapi<0.156.1\n') \
#     --no-emit-package airflow-agentvault --no-emit-package airflow-agentvault-stack -o ci/airflow-3.2.txt
# (this repository's two packages are installed editable on top.)
# (Airflow 3.2.2's execution API cannot build its routes with FastAPI 0.156.1 or later: pydantic finds no
# discriminator field on TITerminalStatePayload, and the dag-processor and workers exit at start.)
# Usage: bash scripts/test-airflow.sh [3.1 3.2 ...] [--] [extra pytest arguments]
#   default: 3.1 then 3.2, each needing its ci/airflow-<version>.txt; every version runs even when one fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find-uv.sh
versions=()
while [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+\.[0-9]+$ ]]; do
  versions+=("$1")
  shift
done
[ "${1:-}" = "--" ] && shift
if [ ${#versions[@]} -eq 0 ]; then
  versions=(3.1 3.2)
fi
for version in "${versions[@]}"; do
  if [ ! -f "ci/airflow-$version.txt" ]; then
    echo "no constraints for Airflow $version: ci/airflow-$version.txt is missing" >&2
    exit 2
  fi
done
interpreter=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11.*/bin/python3.11 2>/dev/null | sort -V | tail -n 1 || true)
interpreter="${interpreter:-$(command -v python3.11)}"
base_path=$PATH
status=0
for version in "${versions[@]}"; do
  venv=".venv-airflow-$version"
  if [ ! -x "$venv/bin/python" ]; then
    UV_PYTHON_DOWNLOADS=never "$UV" venv -q "$venv" --python "$interpreter" >&2
  fi
  "$UV" pip sync -q --python "$venv/bin/python" "ci/airflow-$version.txt" >&2
  "$UV" pip install -q --python "$venv/bin/python" --no-deps -e . -e stack >&2
  echo "== Airflow $("$venv/bin/python" -c 'import airflow; print(airflow.__version__)'): unit suite and real-scheduler stages" >&2
  PATH="$PWD/$venv/bin:$base_path" "$venv/bin/python" -m pytest tests/unit tests/e2e/test_deferred_stage.py -q \
    -p no:cacheprovider "$@" || status=1
done
exit "$status"
