#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests against real servers on 127.0.0.1, example DAG runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
