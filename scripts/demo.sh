#!/usr/bin/env bash
# The main job: the research pipeline end to end (reference agents + a real Airflow on SQLite).
# Usage: bash scripts/demo.sh ["topic"] [--compact] [--keep-running] [--port 8080] ... (--help lists them all)
set -euo pipefail
cd "$(dirname "$0")/.."
# Sets itself up: creates or syncs .venv from uv.lock (a quick, silent no-op when it is current); installs
# nothing the demo does not need (the test suite's extras are scripts/setup-tests.sh).
bash scripts/setup.sh >&2
export PATH="$PWD/.venv/bin:$PATH"
source scripts/find-uv.sh  # --trace installs the trace viewer's own venv with it
exec .venv/bin/python -m agentvault_stack.demo "$@"
