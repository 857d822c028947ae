"""The protocol layer, the reference agents and the trigger event mapping never import Airflow; the provider
never imports the stack (its wheel installs without it); no import cycles and no long modules without a reason."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

AIRFLOW_FREE_PACKAGES = ["airflow_agentvault.protocol", "agentvault_stack.agent"]
PROVIDER = REPO / "airflow_agentvault"
#: Both distributions' packages, by import name.
PACKAGES = {"airflow_agentvault": PROVIDER, "agentvault_stack": REPO / "stack" / "agentvault_stack"}
MAX_LINES = 400
#: How a longer module's docstring says why, on its first line: "... (long: one life cycle)."
LONG_REASON = re.compile(r"\(long: [^)]{5,}\)")
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


def imported_modules(path: Path, modules: Iterable[str] = ()) -> set[str]:
    """Every module ``path`` names in an import statement, at any depth (lazy imports count too);
    ``from package import name`` names ``package.name`` when that is one of ``modules``."""
    known = set(modules)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            names.update(submodules)
            if len(submodules) < len(node.names):
                names.add(node.module)
    return names


def package_modules() -> dict[str, Path]:
    """Every module of both packages by dotted name (a package by its own name)."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_cycle_finder_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_either_package():
    modules = package_modules()
    graph = {name: (imported_modules(path, modules) & modules.keys()) - {name} for name, path in modules.items()}
    assert len(graph) > 80 and sum(map(len, graph.values())) > 100
    assert import_cycles(graph) == []


def test_no_module_past_400_lines_without_a_reason():
    """A module longer than MAX_LINES says why on its docstring's first line: ``(long: <reason>)``."""
    unexplained = {}
    for name, path in package_modules().items():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and not LONG_REASON.search(docstring.split("\n")[0]):
            unexplained[name] = lines
    assert unexplained == {}


def test_the_provider_never_imports_the_stack():
    """The reference agents, demo and test stacks ship in their own distribution; the provider works without it."""
    offenders = {
        path.relative_to(REPO).as_posix(): sorted(n for n in imported_modules(path) if n.split(".")[0] == "agentvault_stack")
        for path in PROVIDER.rglob("*.py")
    }
    assert len(offenders) > 30
    assert {path: names for path, names in offenders.items() if names} == {}
