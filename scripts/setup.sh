#!/usr/bin/env bash
# Creates or syncs .venv from uv.lock (Airflow, the provider and the agents of stack/ in editable mode,
# test tools): a quick, silent no-op when it is current. Installs nothing else; what only the test suite
# needs (a browser, Postgres, Redis) is scripts/setup-tests.sh, which scripts/test.sh runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find-uv.sh
if ! "$UV" sync --frozen --python 3.11 --check --quiet >/dev/null 2>&1; then
  echo "Setting up .venv from uv.lock (the first time takes a minute or two)..." >&2
  "$UV" sync --frozen --compile-bytecode --python 3.11 --quiet
fi
