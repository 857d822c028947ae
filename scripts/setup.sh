#!/usr/bin/env bash
# Creates .venv from uv.lock (Airflow, the provider in editable mode, test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
uv sync --frozen --compile-bytecode --python 3.11
