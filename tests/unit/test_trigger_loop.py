"""
The triggerer's event loop never waits for our imports: a trigger run loads nothing of ours or of httpx.

anyio and sniffio, which httpx's async machinery loads on its first use in a loop, are left to it: a
one-off of a few milliseconds per triggerer, not ours to preload through their private modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("trigger_run_probe.py")
#: Packages whose first use inside the loop would block it: ours and the transport stack we drive.
OURS = ("airflow_agentvault", "httpx", "httpcore", "pydantic", "certifi", "h11", "ssl")
#: asyncio's debug mode reports steps slower than this; the report is shown, not asserted, since how
#: long a step takes depends on the machine's load (the imports and schema builds are what is checked).
SLOW_CALLBACK_SECONDS = 0.5


def test_a_trigger_run_imports_nothing_of_ours_and_builds_no_schema():
    out = subprocess.run([sys.executable, str(PROBE), str(SLOW_CALLBACK_SECONDS)], capture_output=True, text=True,
                         timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    imported_in_loop = [m for m in report["imported"] if m.split(".")[0] in OURS]
    assert imported_in_loop == []
    assert report["deferred_models"] == []  # no pydantic schema is built on first use inside the loop
    print("steps asyncio found slow:", report["slow"] or "none")
