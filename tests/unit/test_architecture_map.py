"""docs/architecture.md lists every module of the provider and of the stack, and nothing that no longer exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Each package the map describes, by its folder in the repository.
PACKAGES = {"airflow_agentvault/": REPO / "airflow_agentvault", "agentvault_stack/": REPO / "stack" / "agentvault_stack"}
#: Folders the map describes as a whole, not module by module.
SUMMARISED = ("agentvault_stack/agent/",)


def mapped_paths() -> set[str]:
    """The module paths in the map's tree, each prefixed with its package's folder name."""
    tree = (REPO / "docs" / "architecture.md").read_text().split("```")[1]
    paths, package, parent = set(), "", ""
    for line in tree.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match:
            continue
        name, depth = match.group(2), len(match.group(1))
        if depth == 0:
            package = name if name in PACKAGES else ""
            continue
        if not package:
            continue
        if depth == 2 and name.endswith("/") and name != "protocol/":
            paths.add(package + name)
            continue
        if name == "protocol/":
            parent = "protocol/"
            continue
        if name.endswith(".py"):
            paths.add(package + (parent if depth >= 4 else "") + name)
    return paths


def package_modules() -> set[str]:
    found = set()
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            relative = prefix + path.relative_to(folder).as_posix()
            if relative.startswith(SUMMARISED) or relative.endswith("__init__.py") and "dialects" not in relative:
                continue
            found.add(relative)
    return found | set(SUMMARISED)


def test_the_map_lists_exactly_the_package_modules():
    assert mapped_paths() == package_modules()


def test_the_map_names_each_runners_sse_framer_as_the_code_does():
    text = (REPO / "docs" / "architecture.md").read_text()
    assert "The blocking runner frames events with sseclient-py, the asyncio runner with\n`protocol/sse.py`" in text
    assert re.search(r"client\.py +blocking runner \(requests, SSE framed by sseclient-py\)", text)
    assert re.search(r"async_client\.py +asyncio runner \(httpx, SSE framed by sse\.py\)", text)
    blocking = (REPO / "airflow_agentvault" / "protocol" / "client.py").read_text()
    asyncio_ = (REPO / "airflow_agentvault" / "protocol" / "async_client.py").read_text()
    assert "import sseclient\n" in blocking and "protocol.sse import" not in blocking
    assert "protocol.sse import" in asyncio_ and "sseclient" not in asyncio_
