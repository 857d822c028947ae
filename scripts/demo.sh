#!/usr/bin/env bash
# The main job: the research pipeline end to end (reference agents + a real Airflow on SQLite).
# Usage: bash scripts/demo.sh ["topic"] [--preset slow_llm] [--compact] [--keep-running] [--port 8080]
set -euo pipefail
cd "$(dirname "$0")/.."
# Sets itself up: creates or syncs .venv from uv.lock (a quick no-op when it is current).
bash scripts/setup.sh >&2
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m agentvault_stack.demo "$@"
