"""The interop matrix: every scenario against every real server, through the sync and the async path.

A cell passes when both paths pass and their normalised digests are identical. When the server cannot
do what a scenario asks, the scenario raises ``Unsupported`` with the server's answer: the cell is
recorded as unsupported with that answer and reported as xfail (never as a pass, never skipped
silently). Results go to ``docs/compatibility.md`` (see ``compat_table.py``).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from interop import compat_table
from interop.compat_table import FAIL, PASS, UNSUPPORTED, Cell
from interop.matrix_scenarios import SCENARIOS, AsyncApi, SyncApi, Unsupported
from interop.servers import ROWS

pytestmark = pytest.mark.integration

#: Bound of one scenario on one path (every call inside has its own, shorter timeouts).
CELL_TIMEOUT = 60.0

_FUNCS = {key: fn for key, _, fn in SCENARIOS}


async def _run(api_cls, server, scenario: str) -> tuple[str, object, str]:
    """(status, digest, detail) of one scenario on one path."""
    api = api_cls(server)
    try:
        digest = await asyncio.wait_for(_FUNCS[scenario](api, server), CELL_TIMEOUT)
        return PASS, digest, ""
    except Unsupported as exc:
        return UNSUPPORTED, exc.digest, exc.answer
    except Exception as exc:  # noqa: BLE001 - every failure of a cell is recorded, then raised
        return FAIL, None, f"{api.mode}: {type(exc).__name__}: {exc}"
    finally:
        await api.aclose()


@pytest.mark.parametrize("scenario", [key for key, _, _ in SCENARIOS])
@pytest.mark.parametrize("row", [row.key for row in ROWS])
async def test_cell(row: str, scenario: str, interop_server) -> None:
    server = interop_server(row)
    sync = await _run(SyncApi, server, scenario)
    async_ = await _run(AsyncApi, server, scenario)
    failures = [detail for status, _, detail in (sync, async_) if status == FAIL]
    if failures:
        compat_table.record(row, scenario, Cell(FAIL, "; ".join(failures)))
        pytest.fail("\n".join(failures), pytrace=False)
    if sync[0] != async_[0] or sync[1] != async_[1]:
        detail = (f"sync and async differ: sync {sync[0]} {json.dumps(sync[1], default=str)}; "
                  f"async {async_[0]} {json.dumps(async_[1], default=str)}")
        compat_table.record(row, scenario, Cell(FAIL, detail))
        pytest.fail(detail, pytrace=False)
    if sync[0] == UNSUPPORTED:
        compat_table.record(row, scenario, Cell(UNSUPPORTED, sync[2]))
        pytest.xfail(f"unsupported by {server.label}: {sync[2]}")
    observed = sync[1].get("answer", "") if isinstance(sync[1], dict) else ""
    compat_table.record(row, scenario, Cell(PASS, observed=str(observed)))
