#!/usr/bin/env bash
# What only the test suite needs besides .venv (scripts/test.sh runs this after scripts/setup.sh):
# - the browser tests (tests/ui) drive Debian's chromium through Playwright: when /usr/bin/chromium is
#   missing, it is installed with apt-get if running as root and CI=true, or when asked with --browser
#   (or AGENTVAULT_INSTALL_BROWSER=1). No browser build is ever downloaded from anywhere else.
# - the distributed stack (tests/e2e/test_distributed_stack.py) runs Debian's postgresql and redis-server:
#   when running as root they are installed with apt-get if missing (a no-op when present), with
#   docker-compose, which checks docker-compose.yaml (no Docker engine needed).
set -euo pipefail
cd "$(dirname "$0")/.."
want_browser="${AGENTVAULT_INSTALL_BROWSER:-0}"
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "usage: bash scripts/setup-tests.sh [--browser]" >&2; exit 2 ;;
  esac
done
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && { [ "${CI:-}" = true ] || [ "$want_browser" = 1 ]; }; then
    echo "Installing Debian's chromium for the browser tests (tests/ui)..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: /usr/bin/chromium is missing; tests/ui need it (as root: bash scripts/setup-tests.sh --browser)" >&2
  fi
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  [ -x /usr/bin/redis-server ] || missing+=(redis-server)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)  # validates docker-compose.yaml
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "Installing Debian's ${missing[*]} for the distributed stack tests..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
elif [ ! -x /usr/bin/redis-server ] || ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "note: postgresql or redis-server is missing; tests/e2e/test_distributed_stack.py skips (as root: bash scripts/setup-tests.sh)" >&2
fi
