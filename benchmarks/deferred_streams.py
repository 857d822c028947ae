"""
N concurrent deferred stream triggers in one process, side by side with N synchronous followers.

Each agent task emits one token event per second for ``--work-seconds`` (a slow local LLM). The
deferred side runs N ``AgentVaultStreamTrigger``s on one asyncio loop, as the triggerer does; the
synchronous side runs N ``TaskFollower``s in N threads, as N worker slots would; ``split`` runs the N
triggers in ``--triggerers`` processes (N / triggerers each), each against its own agent, as a
deployment with several triggerers would. Each side runs in its own child process(es), so CPU seconds
and peak RSS are its own; the agents run in further processes. Event latency is the time from the
agent stamping an event to the follower decoding it; ``--agents 2`` splits each process's tasks over
two agents, so that a busy agent's own delay is not counted as the follower's. All N triggers of a
process start at once (a triggerer taking over a full queue of tasks sent before); ``--ramp R`` sends
task i and starts its follower at i/N * R s instead, as tasks that defer one after the other would.
The latency-over-time rows show the start-up and the end of the tasks apart from the steady state.
``--tracing absent,off,on`` runs each mode once per tracing mode (``benchmarks/_tracing.py``): the
provider's tracing calls replaced by no-ops, no tracer provider (the default), and an SDK provider.

    .venv/bin/python benchmarks/deferred_streams.py                  # 100 and 1,000 streams, 60 s of work
    .venv/bin/python benchmarks/deferred_streams.py --streams 2000 --modes split   # 2 triggerers, 2 agents
    .venv/bin/python benchmarks/deferred_streams.py --streams 50 --work-seconds 10
    .venv/bin/python benchmarks/deferred_streams.py --streams 1000 --modes deferred --tracing absent,off
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _agent import reference_agent  # noqa: E402
from _tracing import MODES as TRACING_MODES  # noqa: E402
from _tracing import set_tracing  # noqa: E402

CONN_ID = "bench_agent"
WINDOW_S = 15.0  # width of a row of the latency-over-time table


class Samples:
    """(arrival epoch, latency) of every decoded event, and the GC pauses; appended from any thread."""

    def __init__(self) -> None:
        self.arrived = array("d")
        self.latency = array("d")
        self.gc_pauses = array("d")
        self.gc_cpu = 0.0
        self._gc_started = self._gc_cpu_started = 0.0

    def probe(self) -> None:
        """Wrap every subscription's event callback: each decoded event passes through it exactly once."""
        from airflow_agentvault.protocol.operations import StreamWatch

        original, arrived, latency = StreamWatch.__init__, self.arrived, self.latency

        def init(watch, *args, **kwargs):
            original(watch, *args, **kwargs)
            inner = watch.on_event

            def on_event(event):
                stamp = getattr(event, "timestamp", None)
                if stamp is not None:
                    now = time.time()
                    arrived.append(now)
                    latency.append(now - stamp.timestamp())
                inner(event)

            watch.on_event = on_event

        StreamWatch.__init__ = init
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started, self._gc_cpu_started = time.perf_counter(), time.thread_time()
        else:
            self.gc_cpu += time.thread_time() - self._gc_cpu_started
            if info["generation"] == 2:
                self.gc_pauses.append(time.perf_counter() - self._gc_started)

    def save(self, path: str) -> None:
        with open(path, "wb") as out:
            self.arrived.tofile(out)
            self.latency.tofile(out)


def load_samples(path: str) -> tuple[array, array]:
    arrived, latency = array("d"), array("d")
    raw = Path(path).read_bytes()
    half = len(raw) // 2
    arrived.frombytes(raw[:half])
    latency.frombytes(raw[half:])
    return arrived, latency


def _pct(values: list[float], p: float) -> float:
    return values[min(int(p * len(values)), len(values) - 1)] * 1000 if values else float("nan")


def summary(latency) -> dict:
    ordered = sorted(latency)
    return {"events": len(ordered), "p50_ms": _pct(ordered, 0.50), "p95_ms": _pct(ordered, 0.95),
            "p99_ms": _pct(ordered, 0.99), "max_ms": ordered[-1] * 1000 if ordered else float("nan")}


def over_time(arrived, latency, origin: float) -> list[dict]:
    """Latency percentiles per ``WINDOW_S`` of arrival time, counted from ``origin``."""
    rows: dict[int, list[float]] = {}
    for when, value in zip(arrived, latency, strict=True):
        rows.setdefault(int((when - origin) // WINDOW_S), []).append(value)
    return [{"from_s": k * WINDOW_S, **summary(v)} for k, v in sorted(rows.items())]


def _send(client, index: int, work: float) -> str:
    from airflow_agentvault.protocol.models import Message, TextPart

    override = {"reference_agent": {"work_seconds": work, "tokens": int(work), "tokens_per_second": 1.0}}
    return client.send(Message(role="user", parts=[TextPart(content=f"stream {index}")], metadata=override))


def _quiet_logs() -> None:
    """Drop the INFO lines the stdlib loggers would print; the triggers' structlog lines are still built."""
    import logging

    logging.disable(logging.INFO)


async def _loop_lag(lags: list[tuple[float, float]], every: float = 0.05) -> None:
    """How late the loop runs a timer: the time a ready event waits behind other callbacks."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every
        await asyncio.sleep(every)
        lags.append((time.time(), loop.time() - due))


def _start_all(urls: list[str], n: int, work: float, ramp: float) -> list[tuple[int, str | None]]:
    """
    (agent index, task id) of n tasks split evenly over the agents, all sent now.

    With ``ramp`` none is sent yet (task id None): each is sent just before its follower starts, as an
    operator sends its task and then defers, so tasks start, and end, spread over the ramp too.
    """
    from airflow_agentvault.protocol.client import AgentClient

    plan = [index % len(urls) for index in range(n)]
    if ramp:
        return [(agent, None) for agent in plan]
    clients = [AgentClient(url) for url in urls]
    return [(agent, _send(clients[agent], index, work)) for index, agent in enumerate(plan)]


def run_deferred(urls: list[str], n: int, work: float, samples: Samples, ramp: float) -> dict:
    from airflow_agentvault.operators.stage_timing import StageTiming
    from airflow_agentvault.protocol.client import AgentClient
    from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger

    for index, url in enumerate(urls):
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}_{index}"] = json.dumps({"conn_type": "agentvault", "host": url})
    samples.probe()
    _quiet_logs()
    task_ids = _start_all(urls, n, work, ramp)
    timing = {"read_timeout": work + 60, "overall_timeout": work + 300}
    lags: list[tuple[float, float]] = []

    async def one(index: int, agent: int, task_id: str | None) -> str:
        if task_id is None:  # the worker's send, then the deferral: the send is not the triggerer's work
            await asyncio.sleep(ramp * index / n)
            task_id = await asyncio.to_thread(_send, AgentClient(urls[agent]), index, work)
        trigger = AgentVaultStreamTrigger(f"{CONN_ID}_{agent}", task_id, **StageTiming.begin(timing).trigger_kwargs())
        async for event in trigger.run():
            return event.payload["task"]["state"] if event.payload["status"] == "done" else event.payload["status"]
        return "no event"

    async def all_of_them() -> list[str]:
        lag = asyncio.create_task(_loop_lag(lags))
        try:
            return await asyncio.gather(*(one(i, a, t) for i, (a, t) in enumerate(task_ids)))
        finally:
            lag.cancel()

    result = _measure(lambda: asyncio.run(all_of_them()), samples)
    late = sorted(lag for _, lag in lags)
    result["loop_lag_p99_ms"] = _pct(late, 0.99)
    windows: dict[int, float] = {}
    for when, lag in lags:
        key = int((when - result["started_at"]) // WINDOW_S)
        windows[key] = max(windows.get(key, 0.0), lag * 1000)
    result["loop_lag_max_ms"] = [round(windows.get(k, 0.0)) for k in range(max(windows, default=-1) + 1)]
    return result


def run_sync(urls: list[str], n: int, work: float, samples: Samples, ramp: float) -> dict:
    from airflow_agentvault.protocol.client import AgentClient, TaskFollower
    from airflow_agentvault.protocol.timing import Timing

    samples.probe()
    _quiet_logs()
    task_ids = _start_all(urls, n, work, ramp)
    timing = Timing(read_timeout=work + 60, overall_timeout=work + 300)
    states: list[str] = []

    def follow_one(index: int, agent: int, task_id: str | None) -> None:
        client = AgentClient(urls[agent])
        outcome = TaskFollower(client, timing).follow(task_id or _send(client, index, work))
        states.append(outcome.task.state.value)

    def all_of_them() -> list[str]:
        threads = [threading.Thread(target=follow_one, args=(i, *t), daemon=True) for i, t in enumerate(task_ids)]
        for index, thread in enumerate(threads):
            if ramp:
                time.sleep(max(ramp * index / n - (time.monotonic() - begun), 0))
            thread.start()
        for thread in threads:
            thread.join(timeout=work + 400)
        return states

    begun = time.monotonic()
    return _measure(all_of_them, samples)


def _measure(body, samples: Samples) -> dict:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started, epoch = time.monotonic(), time.time()
    states = body()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    pauses = sorted(samples.gc_pauses)
    return {
        "completed": sum(1 for s in states if s == "COMPLETED"),
        "started_at": epoch,
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mib": after.ru_maxrss / 1024,
        "gc_cpu_s": samples.gc_cpu, "gc2_count": len(pauses), "gc2_max_ms": pauses[-1] * 1000 if pauses else 0.0,
        **summary(samples.latency),
    }


def child(mode: str, urls: str, n: int, work: float, out: str, ramp: float, gc_threshold: str, tracing: str) -> None:
    set_tracing(tracing)
    if gc_threshold:  # what a deployment may set in airflow_local_settings.py; off unless asked for
        gc.set_threshold(*(int(value) for value in gc_threshold.split(",")))
    samples = Samples()
    result = (run_sync if mode == "sync" else run_deferred)(urls.split(","), n, work, samples, ramp)
    samples.save(out)
    print("RESULT " + json.dumps(result), flush=True)


def _spawn(mode: str, urls: str, n: int, work: float, out: str, ramp: float, gc_threshold: str,
           tracing: str) -> subprocess.Popen:
    """A child writing its output (the triggers' log lines among it) to files: a pipe nobody reads yet blocks it."""
    with open(out + ".out", "w") as stdout, open(out + ".err", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, __file__, "--child", mode, urls, str(n), str(work), out, str(ramp), gc_threshold, tracing],
            stdout=stdout, stderr=stderr,
        )


def _collect(proc: subprocess.Popen, out: str, label: str, timeout: float) -> dict:
    proc.wait(timeout=timeout)
    with open(out + ".out") as stdout:
        line = next((text for text in stdout if text.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{label} failed:\n{Path(out + '.err').read_text()[-3000:]}")
    return json.loads(line[7:])


def run_mode(mode: str, n: int, work: float, ramp: float, triggerers: int, agents: int, gc_threshold: str,
             tmp: str, tracing: str = "off", label: str = "") -> list[dict]:
    """One row per process, then (for ``split``) one combined row; each with its samples' file."""
    name = label or mode
    parts = triggerers if mode == "split" else 1
    rows = []
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(reference_agent()) for _ in range(parts * agents)]
        procs = []
        for index in range(parts):
            out = os.path.join(tmp, f"{mode}-{tracing}-{n}-{index}.bin")
            mine = ",".join(urls[index * agents:(index + 1) * agents])
            procs.append((_spawn(mode, mine, n // parts, work, out, ramp, gc_threshold, tracing), out))
        for index, (proc, out) in enumerate(procs):
            label = f"{name}#{index + 1}" if parts > 1 else name
            rows.append({"mode": label, "streams": n // parts, "agents": agents, "samples": out,
                         **_collect(proc, out, f"{label} x {n}", work + 900)})
    if parts > 1:
        arrived, latency = array("d"), array("d")
        for row in rows:
            a, lat = load_samples(row["samples"])
            arrived.extend(a)
            latency.extend(lat)
        combined = {"mode": f"{name} (all)", "streams": n, "agents": agents * parts, "samples": None,
                    "completed": sum(r["completed"] for r in rows), "started_at": min(r["started_at"] for r in rows),
                    "wall_s": max(r["wall_s"] for r in rows), "cpu_s": sum(r["cpu_s"] for r in rows),
                    "peak_rss_mib": sum(r["peak_rss_mib"] for r in rows), "gc_cpu_s": sum(r["gc_cpu_s"] for r in rows),
                    **summary(latency)}
        rows.append({**combined, "arrays": (arrived, latency)})
    return rows


def print_tables(rows: list[dict], work: float, ramp: float, gc_threshold: str) -> None:
    start = f"started over {ramp:g} s" if ramp else "all started at once"
    tuned = f"; gc.set_threshold({gc_threshold})" if gc_threshold else ""
    print(f"\n{work:g} s of simulated LLM work per task, one token event per second; triggers {start}{tuned}\n")
    print(f"{'mode':<16}{'streams':>8}{'agents':>7}{'done':>6}{'wall s':>8}{'CPU s':>8}{'CPU/wall':>9}{'RSS MiB':>9}"
          f"{'events':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}{'gc s':>6}{'gc2':>5}{'gc2 ms':>8}{'lag99':>7}")
    nan = float("nan")
    for r in rows:
        print(f"{r['mode']:<16}{r['streams']:>8}{r['agents']:>7}{r['completed']:>6}{r['wall_s']:>8.1f}{r['cpu_s']:>8.1f}"
              f"{r['cpu_s'] / r['wall_s']:>9.2f}{r['peak_rss_mib']:>9.0f}{r['events']:>8}{r['p50_ms']:>8.1f}"
              f"{r['p95_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['max_ms']:>8.0f}{r.get('gc_cpu_s', nan):>6.1f}"
              f"{r.get('gc2_count', ''):>5}{r.get('gc2_max_ms', nan):>8.1f}{r.get('loop_lag_p99_ms', nan):>7.1f}")
    print(f"\nLatency over time (arrival, in {WINDOW_S:g} s windows from the process's start; ms):")
    for r in rows:
        arrays = r.get("arrays") or load_samples(r["samples"])
        cells = "  ".join(f"{w['from_s']:>3.0f}s:{w['events']}/{w['p50_ms']:.1f}/{w['p99_ms']:.0f}"
                          for w in over_time(*arrays, r["started_at"]))
        print(f"  {r['mode']} x {r['streams']}  (window: events/p50/p99)  {cells}")
        if r.get("loop_lag_max_ms"):
            print(f"  {'':>{len(r['mode'])}}   loop lag, max per window (ms): {r['loop_lag_max_ms']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--work-seconds", type=float, default=60.0)
    parser.add_argument("--modes", nargs="+", default=["deferred", "sync"], choices=["deferred", "sync", "split"])
    parser.add_argument("--triggerers", type=int, default=2, help="processes (and agents) of the split mode")
    parser.add_argument("--agents", type=int, default=1, help="agent processes per follower process")
    parser.add_argument("--ramp", type=float, default=0.0, help="send the tasks and start their followers over this many seconds")
    parser.add_argument("--gc-threshold", default="",
                        help="gc.set_threshold in the followers' processes, e.g. 50000,20,100 (default: Python's)")
    parser.add_argument("--tracing", nargs="+", default=["off"], choices=TRACING_MODES,
                        help="tracing modes, each mode run once per tracing mode (default: off)")
    parser.add_argument("--child", nargs=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, urls, n, work, out, ramp, gc_threshold, tracing = args.child
        child(mode, urls, int(n), float(work), out, float(ramp), gc_threshold, tracing)
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.streams:
            for mode in args.modes:
                for tracing in args.tracing:
                    label = f"{mode}/{tracing}" if len(args.tracing) > 1 else mode
                    rows += run_mode(mode, n, args.work_seconds, args.ramp, args.triggerers, args.agents,
                                     args.gc_threshold, tmp, tracing, label)
                    print(f"  done: {label} x {n} at {datetime.now():%H:%M:%S}", file=sys.stderr, flush=True)
        print_tables(rows, args.work_seconds, args.ramp, args.gc_threshold)
    by = {(r["mode"], r["streams"]): r for r in rows}
    for n in args.streams:
        for mode in args.modes:
            base = by.get((f"{mode}/absent", n))
            for tracing in (t for t in args.tracing if base and t != "absent"):
                r = by[(f"{mode}/{tracing}", n)]
                print(f"{n} streams, {mode}: tracing {tracing} against absent: CPU {r['cpu_s'] / base['cpu_s']:.2f}x, "
                      f"memory {r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x, p50 {r['p50_ms']:.1f} / "
                      f"{base['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} / {base['p99_ms']:.1f} ms")
        if ("deferred", n) in by and ("sync", n) in by:
            d, s = by[("deferred", n)], by[("sync", n)]
            print(f"{n} streams: deferred uses {d['cpu_s'] / max(s['cpu_s'], 1e-9):.2f}x the CPU and "
                  f"{d['peak_rss_mib'] / s['peak_rss_mib']:.2f}x the memory of {n} synchronous threads")


if __name__ == "__main__":
    main()
