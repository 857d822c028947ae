#!/usr/bin/env bash
# The whole test suite: unit, integration against real servers on 127.0.0.1, end-to-end under a real Airflow.
set -euo pipefail
cd "$(dirname "$0")/.."
# Sets itself up: creates or syncs .venv from uv.lock (a quick no-op when it is current).
bash scripts/setup.sh >&2
export PATH="$PWD/.venv/bin:$PATH"
# Third-party agents run in their own uv-built venvs (tests/thirdparty/sdk_venv.py reads UV).
export UV="${UV:-$(command -v uv || python3 -c 'import uv; print(uv.find_uv_bin())')}"
exec .venv/bin/python -m pytest "$@"
