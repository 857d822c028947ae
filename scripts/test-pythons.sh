#!/usr/bin/env bash
# The unit and integration suites on every other supported Python (3.10, 3.12, 3.13), each in its own
# .venv-3.X synced from uv.lock with the interpreter pyenv installed (never a downloaded one).
# Usage: bash scripts/test-pythons.sh [3.10 3.12 ...] ; extra pytest arguments after "--".
set -euo pipefail
cd "$(dirname "$0")/.."
versions=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do versions+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.12 3.13)
source scripts/find-uv.sh
status=0
for version in "${versions[@]}"; do
  interpreter=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version" 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$interpreter" ]; then
    echo "Python $version: no interpreter under pyenv" >&2
    [ "${CI:-}" = "true" ] && status=1
    continue
  fi
  echo "== Python $version ($interpreter): unit and integration suites" >&2
  UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=".venv-$version" \
    "$UV" sync --frozen --compile-bytecode --python "$interpreter" >&2
  ".venv-$version/bin/python" -m pytest tests/unit tests/integration -q -p no:cacheprovider "$@" || status=1
done
exit $status
