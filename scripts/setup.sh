#!/usr/bin/env bash
# Creates .venv from uv.lock (Airflow, the provider in editable mode, test tools).
# The browser tests (tests/ui) drive Debian's chromium through Playwright: when /usr/bin/chromium is
# missing, it is installed with apt-get if running as root and CI=true, or when asked with --browser
# (or AGENTVAULT_INSTALL_BROWSER=1). No browser build is ever downloaded from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
want_browser="${AGENTVAULT_INSTALL_BROWSER:-0}"
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "usage: bash scripts/setup.sh [--browser]" >&2; exit 2 ;;
  esac
done
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
UV="$(command -v uv || python3 -c 'import uv; print(uv.find_uv_bin())')"
"$UV" sync --frozen --compile-bytecode --python 3.11
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && { [ "${CI:-}" = true ] || [ "$want_browser" = 1 ]; }; then
    echo "Installing Debian's chromium for the browser tests (tests/ui)..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: /usr/bin/chromium is missing; tests/ui need it (as root: bash scripts/setup.sh --browser)" >&2
  fi
fi
