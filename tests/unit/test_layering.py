"""The protocol layer, the reference agents and the trigger event mapping never import Airflow; the provider
never imports the stack (its wheel installs without it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

AIRFLOW_FREE_PACKAGES = ["airflow_agentvault.protocol", "agentvault_stack.agent"]
PROVIDER = REPO / "airflow_agentvault"
AIRFLOW_FREE_MODULES = ["airflow_agentvault.triggers.events", "airflow_agentvault.connection_form"]


def python_prints(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (so imports start from nothing)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_airflow_free_modules_do_not_import_airflow():
    code = (
        "import importlib, pkgutil, sys\n"
        f"names = {AIRFLOW_FREE_MODULES!r}\n"
        f"for package in {AIRFLOW_FREE_PACKAGES!r}:\n"
        "    module = importlib.import_module(package)\n"
        "    names += [info.name for info in pkgutil.walk_packages(module.__path__, package + '.')\n"
        "              if not info.name.endswith('__main__')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert len(names) > 30, names\n"
        "leaked = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(leaked)\n"
    )
    assert python_prints(code).strip() == "[]"


def test_building_stages_loads_only_what_a_sync_task_runs():
    """Every task process parses its DAG file: the trigger module (and Airflow's trigger base) loads on deferral."""
    code = (
        "import sys\n"
        "import airflow_agentvault.pipelines.stage, airflow_agentvault.pipelines.report\n"
        "from airflow_agentvault.protocol.client import AgentClient\n"
        "AgentClient('http://127.0.0.1:1/a2a/')\n"
        "print(sorted(m for m in sys.modules if m.startswith('airflow_agentvault.')))\n"
    )
    loaded = python_prints(code)
    assert "'airflow_agentvault.protocol.client'" in loaded
    assert "'airflow_agentvault.triggers.agentvault'" not in loaded


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` names in an import statement, at any depth (lazy imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_provider_never_imports_the_stack():
    """The reference agents, demo and test stacks ship in their own distribution; the provider works without it."""
    offenders = {
        path.relative_to(REPO).as_posix(): sorted(n for n in imported_modules(path) if n.split(".")[0] == "agentvault_stack")
        for path in PROVIDER.rglob("*.py")
    }
    assert len(offenders) > 30
    assert {path: names for path, names in offenders.items() if names} == {}
