#!/usr/bin/env bash
# The whole test suite: unit, integration against real servers on 127.0.0.1, end-to-end under a real Airflow.
set -euo pipefail
cd "$(dirname "$0")/.."
# Sets itself up: creates or syncs .venv from uv.lock (a quick no-op when it is current), then what only the
# tests need (scripts/setup-tests.sh: a browser, Postgres, Redis; installed as root, else a note).
bash scripts/setup.sh >&2
bash scripts/setup-tests.sh >&2
export PATH="$PWD/.venv/bin:$PATH"
# Third-party agents run in their own uv-built venvs (tests/thirdparty/sdk_venv.py reads UV).
source scripts/find-uv.sh
exec .venv/bin/python -m pytest "$@"
