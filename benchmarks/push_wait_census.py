"""
What a stage waiting by push keeps alive, counted object by object: live bytes per parked wait and where
they were allocated.

Starts ``push_waits.py``'s agent, runs N ``AgentVaultStreamTrigger``s waiting by push in this process,
and once every one is parked on its doorbell (started a hundred at a time) compares a ``tracemalloc``
snapshot and the garbage collector's objects with those taken before they started. Live objects only:
``push_waits.py`` measures resident memory, which also holds what the allocator keeps after the waits
started.

    .venv/bin/python benchmarks/push_wait_census.py            # 1,000 parked waits
    .venv/bin/python benchmarks/push_wait_census.py --waits 200 --sites 20
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import logging
import os
import time
import tracemalloc
from pathlib import Path

from push_waits import running_agent  # this folder: the same agent

CONN_ID = "census_agent"
#: Waits started together.
BATCH = 100


async def _until_parked(n: int) -> None:
    """Until ``n`` waits are parked on their doorbells in this process's receiver (bounded): by push, not streaming."""
    from airflow_agentvault.protocol import receiver

    shared = await receiver.shared_receiver()  # the connection's default bind address: the waits' receiver
    give_up = time.monotonic() + 300
    while sum(channel.doorbell.waiting for channel in list(shared.channels.values())) < n:
        if time.monotonic() > give_up:
            raise RuntimeError(f"{n} waits never parked by push (some may stream: see the log)")
        await asyncio.sleep(0.2)


async def census(n: int, sites: int) -> None:
    from airflow_agentvault.operators.stage_timing import StageTiming
    from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger

    timing = StageTiming.begin({"read_timeout": 900, "overall_timeout": 1200}).trigger_kwargs()

    async def one(task_id: str) -> None:
        async for _ in AgentVaultStreamTrigger(CONN_ID, task_id, **timing).run():
            return

    warm = [asyncio.create_task(one(f"w-{i}")) for i in range(20)]  # loads what every wait shares
    await _until_parked(len(warm))
    gc.collect()
    tracemalloc.start(6)
    before, types_before = tracemalloc.take_snapshot(), collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    parked: list[asyncio.Task[None]] = []
    for start in range(0, n, BATCH):  # a batch at a time: ten thousand connects at once would time out
        parked += [asyncio.create_task(one(f"t-{i}")) for i in range(start, min(n, start + BATCH))]
        await _until_parked(len(warm) + len(parked))
    gc.collect()
    after, types_after = tracemalloc.take_snapshot(), collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    tracemalloc.stop()
    by_site = after.compare_to(before, "traceback")
    print(f"{n:,} waits parked by push: {sum(s.size_diff for s in by_site) / n / 1024:.2f} KiB live per wait, "
          f"{sum((types_after - types_before).values()) / n:.1f} objects the collector tracks per wait")
    print("\nWhere the bytes were allocated (per wait; the innermost frames last):")
    for stat in by_site[:sites]:
        frames = " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback)
        print(f"{stat.size_diff / n:7.0f} B {stat.count_diff / n:5.1f} blocks  {frames}")
    print("\nObjects the collector tracks, by type (per wait):")
    for name, count in (types_after - types_before).most_common(sites):
        print(f"{count / n:6.2f}  {name}")
    for task in parked + warm:
        task.cancel()
    await asyncio.gather(*parked, *warm, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", type=int, default=1000, help="stages waiting by push (default 1,000)")
    parser.add_argument("--sites", type=int, default=25, help="allocation sites and types listed (default 25)")
    args = parser.parse_args()
    with running_agent() as base:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({
            "conn_type": "agentvault", "host": f"{base}/rpc",
            "extra": {"dialect": "a2a-1.0", "push": "on", "push_safety_poll": 600}})
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # the triggers' logs are not the report
        logging.disable(logging.INFO)
        asyncio.run(census(args.waits, args.sites))

if __name__ == "__main__":
    main()
