# Sourced by the other scripts (from the repository root): sets and exports UV, the uv to use.
# $UV if set, else uv on PATH, else the project's own copy in .venv-tools, made on first use with
# python3's venv module and that venv's pip: nothing is installed into the system Python.
if [ -z "${UV:-}" ]; then
  if command -v uv >/dev/null 2>&1; then
    UV="$(command -v uv)"
  else
    if [ ! -x .venv-tools/bin/uv ]; then
      echo "uv is not installed: installing it into .venv-tools (once)..." >&2
      # -qq: pip warns once per configured package index that does not carry uv (a local mirror,
      # say), though another index has it; errors still show.
      if ! { python3 -m venv .venv-tools && .venv-tools/bin/pip install -qq --disable-pip-version-check uv; }; then
        echo "error: could not install uv into .venv-tools; install uv (https://docs.astral.sh/uv/) and run again" >&2
        exit 1
      fi
    fi
    UV="$PWD/.venv-tools/bin/uv"
  fi
fi
export UV
