#!/usr/bin/env bash
# The built wheel installs where users are: a clean Python 3.13 venv with Airflow 3.3, and ones with the
# older supported Airflow releases (3.1 and 3.2, from ci/airflow-3.1.txt and ci/airflow-3.2.txt);
# `airflow providers list` shows the provider.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-$(command -v uv || python3 -c 'import uv; print(uv.find_uv_bin())')}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$UV" build -q --wheel --out-dir "$work/dist" >&2
wheel=$(ls "$work"/dist/airflow_agentvault-*.whl)
pyenv_python() { ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python"$1" 2>/dev/null | sort -V | tail -n 1; }
check() {  # name, python version, extra install arguments...
  local name=$1 version=$2; shift 2
  local venv="$work/$name"
  UV_PYTHON_DOWNLOADS=never "$UV" venv -q "$venv" --python "$(pyenv_python "$version")" >&2
  "$UV" pip install -q --python "$venv/bin/python" "$wheel" "$@" >&2
  local listed
  listed=$(AIRFLOW_HOME="$work/home-$name" "$venv/bin/airflow" providers list 2>/dev/null | grep -c "airflow-agentvault" || true)
  if [ "$listed" -ge 1 ]; then
    echo "wheel on Python $version, $name: airflow providers list shows airflow-agentvault"
  else
    echo "wheel on Python $version, $name: the provider is NOT listed" >&2
    return 1
  fi
}
check airflow-3.3 3.13 "apache-airflow>=3.3.2,<3.4"
check airflow-3.1 3.11 --constraints ci/airflow-3.1.txt
check airflow-3.2 3.11 --constraints ci/airflow-3.2.txt
