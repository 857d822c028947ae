#!/usr/bin/env bash
# Creates .venv from uv.lock (Airflow, the provider in editable mode, test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
UV="$(command -v uv || python3 -c 'import uv; print(uv.find_uv_bin())')"
"$UV" sync --frozen --compile-bytecode --python 3.11
