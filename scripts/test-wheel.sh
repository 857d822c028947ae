#!/usr/bin/env bash
# The built wheel installs alone where users are: a clean Python 3.13 venv with Airflow 3.3, and a
# Python 3.11 ones with the older supported Airflow releases (3.1 and 3.2, from ci/airflow-3.1.txt and
# ci/airflow-3.2.txt), each holding only
# Airflow and the provider's wheel (no reference agents, no test tools). In each, `airflow providers list`
# shows the provider, its connection type (and on 3.3 its form) is registered, and a one-stage DAG run
# gets a reference agent's answer (scripts/check_installed_provider.py; the agent runs from .venv).
# The agents' wheel (stack/) is built too, and must carry the research corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find-uv.sh
[ -x .venv/bin/python ] || bash scripts/setup.sh >&2
work=$(mktemp -d)
agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ]; then
    kill "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
"$UV" build -q --wheel --out-dir "$work/dist" >&2
wheel=$(ls "$work"/dist/airflow_agentvault-*.whl)
"$UV" build -q --wheel --package airflow-agentvault-stack --out-dir "$work/dist-stack" >&2
.venv/bin/python - "$work"/dist-stack/airflow_agentvault_stack-*.whl <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
corpus = [n for n in names if n.startswith("agentvault_stack/agent/research/corpus/") and n.endswith(".md")]
assert len(corpus) >= 16 and "agentvault_stack/agent/research/corpus/README.md" in corpus, corpus
assert not any(n.startswith("airflow_agentvault/") for n in names), "the agents' wheel carries the provider"
print(f"agents' wheel: {len(corpus)} corpus files")
PY
# The reference agent prints AGENT_URL=... once it serves; the read is bounded.
coproc AGENT { exec .venv/bin/python -m agentvault_stack.agent --port 0 --log-level error; }
agent_pid=$AGENT_PID
if ! IFS= read -r -t 60 line <&"${AGENT[0]}" || [ "${line#AGENT_URL=}" = "$line" ]; then
  echo "the reference agent did not start" >&2
  exit 1
fi
agent_url="${line#AGENT_URL=}/a2a/"
pyenv_python() { ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python"$1" 2>/dev/null | sort -V | tail -n 1; }
check() {  # name, python version, extra install arguments...
  local name=$1 version=$2; shift 2
  local venv="$work/$name"
  UV_PYTHON_DOWNLOADS=never "$UV" venv -q "$venv" --python "$(pyenv_python "$version")" >&2
  "$UV" pip install -q --python "$venv/bin/python" "$wheel" "$@" >&2
  mkdir -p "$work/home-$name/dags"
  local listed
  listed=$(AIRFLOW_HOME="$work/home-$name" "$venv/bin/airflow" providers list 2>/dev/null | grep -c "airflow-agentvault" || true)
  if [ "$listed" -ge 1 ]; then
    echo "wheel on Python $version, $name: airflow providers list shows airflow-agentvault"
  else
    echo "wheel on Python $version, $name: the provider is NOT listed" >&2
    return 1
  fi
  local log="$work/check-$name.log"
  if [ "$name" = airflow-3.2 ]; then
    # Airflow 3.2.2's in-process dag.test() fails inside Airflow (its execution API's app state has no
    # svcs_registry), so this venv checks the listing only; scripts/test-airflow.sh runs stages on 3.2
    # under a real scheduler and triggerer.
    echo "wheel on Python $version, $name: a one-stage dag.test() is not run (it fails inside Airflow 3.2.2)"
    return 0
  fi
  if ! AIRFLOW_HOME="$work/home-$name" AIRFLOW__CORE__DAGS_FOLDER="$work/home-$name/dags" \
      AIRFLOW__CORE__LOAD_EXAMPLES=False AGENT_URL="$agent_url" \
      timeout 600 "$venv/bin/python" scripts/check_installed_provider.py >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "wheel on Python $version, $name: the installed provider failed its checks (above)" >&2
    return 1
  fi
  grep "^installed provider: " "$log" | sed "s/^installed provider: /wheel on Python $version, $name: /"
}
check airflow-3.3 3.13 "apache-airflow>=3.3.2,<3.4"
check airflow-3.1 3.11 --constraints ci/airflow-3.1.txt
check airflow-3.2 3.11 --constraints ci/airflow-3.2.txt
