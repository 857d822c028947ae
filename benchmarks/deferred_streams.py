"""
N concurrent deferred stream triggers in one process, side by side with N synchronous followers.

Each agent task emits one token event per second for ``--work-seconds`` (a slow local LLM). The
deferred side runs N ``AgentVaultStreamTrigger``s on one asyncio loop, as the triggerer does; the
synchronous side runs N ``TaskFollower``s in N threads, as N worker slots would. Each side runs in its
own child process, so CPU seconds and peak RSS are its own; the agent runs in a third process. Event
latency is the time from the agent stamping an event to the follower decoding it.

    .venv/bin/python benchmarks/deferred_streams.py                  # 100 and 1,000 streams, 60 s of work
    .venv/bin/python benchmarks/deferred_streams.py --streams 50 --work-seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _agent import reference_agent  # noqa: E402

CONN_ID = "bench_agent"


def _latency_probe(latencies: list[float]):
    """Wrap the follower's log writer: every decoded event passes through ``LogLines.add`` exactly once."""
    from airflow_agentvault.protocol.describe import LogLines

    original = LogLines.add

    def probe(self, event):
        stamp = getattr(event, "timestamp", None)
        if stamp is not None:
            latencies.append(datetime.now(timezone.utc).timestamp() - stamp.timestamp())
        return original(self, event)

    LogLines.add = probe


def _start_tasks(url: str, n: int, work: float) -> list[str]:
    from airflow_agentvault.protocol.client import AgentClient
    from airflow_agentvault.protocol.models import Message, TextPart

    client = AgentClient(url)
    override = {"reference_agent": {"work_seconds": work, "tokens": int(work), "tokens_per_second": 1.0}}
    return [
        client.send(Message(role="user", parts=[TextPart(content=f"stream {i}")], metadata=override))
        for i in range(n)
    ]


def _quiet_logs() -> None:
    import logging

    logging.disable(logging.INFO)


def run_deferred(url: str, n: int, work: float) -> dict:
    from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger

    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({"conn_type": "agentvault", "host": url})
    latencies: list[float] = []
    _latency_probe(latencies)
    _quiet_logs()
    task_ids = _start_tasks(url, n, work)
    timing = {"read_timeout": work + 60, "overall_timeout": work + 300}

    async def one(task_id: str) -> str:
        trigger = AgentVaultStreamTrigger(CONN_ID, task_id, timing, deadline=time.time() + work + 300)
        async for event in trigger.run():
            return event.payload["task"]["state"] if event.payload["status"] == "done" else event.payload["status"]
        return "no event"

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(one(t) for t in task_ids))

    return _measure(lambda: asyncio.run(all_of_them()), latencies)


def run_sync(url: str, n: int, work: float) -> dict:
    from airflow_agentvault.protocol.client import AgentClient, TaskFollower
    from airflow_agentvault.protocol.timing import Timing

    latencies: list[float] = []
    _latency_probe(latencies)
    _quiet_logs()
    task_ids = _start_tasks(url, n, work)
    timing = Timing(read_timeout=work + 60, overall_timeout=work + 300)
    states: list[str] = []

    def follow_one(task_id: str) -> None:
        outcome = TaskFollower(AgentClient(url), timing).follow(task_id)
        states.append(outcome.task.state.value)

    def all_of_them() -> list[str]:
        threads = [threading.Thread(target=follow_one, args=(t,), daemon=True) for t in task_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=work + 400)
        return states

    return _measure(all_of_them, latencies)


def _measure(body, latencies: list[float]) -> dict:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    states = body()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(int(p * len(latencies)), len(latencies) - 1)] * 1000 if latencies else float("nan")

    return {
        "completed": sum(1 for s in states if s == "COMPLETED"),
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mib": after.ru_maxrss / 1024,
        "events": len(latencies),
        "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
    }


def child(mode: str, url: str, n: int, work: float) -> None:
    result = (run_deferred if mode == "deferred" else run_sync)(url, n, work)
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--work-seconds", type=float, default=60.0)
    parser.add_argument("--modes", nargs="+", default=["deferred", "sync"], choices=["deferred", "sync"])
    parser.add_argument("--child", nargs=4, metavar=("MODE", "URL", "N", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, url, n, work = args.child
        child(mode, url, int(n), float(work))
        return

    rows = []
    with reference_agent() as url:
        for n in args.streams:
            for mode in args.modes:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, url, str(n), str(args.work_seconds)],
                    capture_output=True, text=True, timeout=args.work_seconds + 900,
                )
                line = next((text for text in out.stdout.splitlines() if text.startswith("RESULT ")), None)
                if line is None:
                    raise SystemExit(f"{mode} x {n} failed:\n{out.stderr[-3000:]}")
                rows.append({"mode": mode, "streams": n, **json.loads(line[7:])})
                print(f"  done: {mode} x {n}", file=sys.stderr, flush=True)

    print(f"\n{args.work_seconds:g} s of simulated LLM work per task, one token event per second\n")
    header = f"{'mode':<9}{'streams':>8}{'done':>6}{'wall s':>8}{'CPU s':>8}{'CPU/wall':>9}{'RSS MiB':>9}" \
             f"{'events':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
    print(header)
    for r in rows:
        print(f"{r['mode']:<9}{r['streams']:>8}{r['completed']:>6}{r['wall_s']:>8.1f}{r['cpu_s']:>8.1f}"
              f"{r['cpu_s'] / r['wall_s']:>9.2f}{r['peak_rss_mib']:>9.0f}{r['events']:>8}{r['p50_ms']:>8.1f}"
              f"{r['p95_ms']:>8.1f}{r['p99_ms']:>8.1f}")
    by = {(r["mode"], r["streams"]): r for r in rows}
    for n in args.streams:
        if ("deferred", n) in by and ("sync", n) in by:
            d, s = by[("deferred", n)], by[("sync", n)]
            print(f"{n} streams: deferred uses {d['cpu_s'] / max(s['cpu_s'], 1e-9):.2f}x the CPU and "
                  f"{d['peak_rss_mib'] / s['peak_rss_mib']:.2f}x the memory of {n} synchronous threads")


if __name__ == "__main__":
    main()
