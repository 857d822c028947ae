"""Fixtures and hooks of the interop matrix (``tests/interop``).

``interop_server(row_key)`` starts the row's server process on first use (see :mod:`interop.servers`;
the AgentVault agent is started exactly as ``agentvault_sdk_agent`` in ``tests/integration/conftest.py``
does, from the same cached venv) and returns its :class:`~interop.matrix_scenarios.Server`; every process is
stopped at the end of the session. ``pytest_sessionfinish`` writes ``docs/compatibility.md`` from the
recorded cells when the whole matrix ran (:mod:`interop.compat_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from interop import compat_table, servers
from interop.matrix_scenarios import SCENARIOS, Server

_written: list[str] = []


@pytest.fixture(scope="session")
def interop_server() -> Iterator[Callable[[str], Server]]:
    running: dict[str, tuple] = {}
    failures: dict[str, str] = {}

    def get(row_key: str) -> Server:
        row = servers.ROWS_BY_KEY[row_key]
        if row.process in failures:
            pytest.fail(failures[row.process], pytrace=False)
        if row.process not in running:
            try:
                running[row.process] = servers.start(servers.PROCESSES[row.process])
            except servers.ServerStartFailure as exc:
                failures[row.process] = str(exc)
                pytest.fail(str(exc), pytrace=False)
        _, base_url = running[row.process]
        return row.server(base_url)

    try:
        yield get
    finally:
        for proc, _ in running.values():
            servers.stop(proc)


def scenario_table() -> list[tuple[str, str, str]]:
    return [(key, title, (fn.__doc__ or "").strip().splitlines()[0]) for key, title, fn in SCENARIOS]


def pytest_sessionfinish(session, exitstatus) -> None:
    note = compat_table.check_or_write([(r.key, r.label) for r in servers.ROWS], scenario_table())
    if note is not None:
        _written.append(note)
        if note.startswith("the interop matrix differs"):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    for note in _written:
        terminalreporter.write_line(note)
