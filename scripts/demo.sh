#!/usr/bin/env bash
# The main job: the research pipeline end to end (reference agents + a real Airflow on SQLite).
# Usage: bash scripts/demo.sh ["topic"] [--preset slow_llm] [--compact] [--keep-running] [--port 8080]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "error: no .venv here: run 'bash scripts/setup.sh' first" >&2
  exit 2
fi
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m airflow_agentvault.demo "$@"
