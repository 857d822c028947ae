"""
The SSE consume path (parse, validate, dedupe, log) against a bare sseclient-py / httpx-sse loop.

A server in its own process streams the same N token events (one word each, as a local LLM sends
them) to both sides. The bare side reads the stream and decodes each event's JSON, nothing else (the
sync one twice: as sseclient-py's README iterates a response, in 128-byte reads, and fed whatever the
socket has ready, as ours reads); our
side follows the task as the stream step does: ``tasks/get``, the subscription, every event parsed into
the typed model, checked, deduplicated and written to the log (a log handler that discards), then
``tasks/get`` for the final task. Each side runs in a fresh child process, so its peak RSS is its own.
``--tracing absent,off,on`` runs our sides once per tracing mode (``benchmarks/_tracing.py``): the
provider's tracing calls replaced by no-ops, no tracer provider (the default), and an SDK provider.

On a loaded machine one run of a side varies by a fifth, so each side runs ``--repeat`` times, the
sides interleaved (each side once, then again), and the table shows
each side's fastest run.

    .venv/bin/python benchmarks/sse_consume.py                       # 50,000 events; memory at 10k, 100k
                                                                     # and its growth between them
    .venv/bin/python benchmarks/sse_consume.py --events 20000 --memory 10000,50000 --repeat 1
    .venv/bin/python benchmarks/sse_consume.py --tracing absent,off,on --memory 10000
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _tracing import MODES as TRACING_MODES  # noqa: E402

TASK_ID = "bench-1"
SIDES = ("bare-sync", "bare-sync-64k", "ours-sync", "bare-async", "ours-async")


def task(state: str) -> dict:
    return {"id": TASK_ID, "state": state, "messages": [], "artifacts": []}


def stream_body(events: int) -> bytes:
    """N one-word task_message events, then COMPLETED."""
    chunks = []
    for i in range(events):
        data = {"taskId": TASK_ID, "message": {"role": "assistant", "parts": [{"type": "text", "content": f"w{i} "}]},
                "timestamp": "2026-01-01T00:00:00Z"}
        chunks.append(f"event: task_message\ndata: {json.dumps(data)}\n\n")
    done = {"taskId": TASK_ID, "state": "COMPLETED", "timestamp": "2026-01-01T00:00:01Z"}
    chunks.append(f"event: task_status\ndata: {json.dumps(done)}\n\n")
    return "".join(chunks).encode()


def serve(events: int) -> None:
    """The agent side: tasks/get (WORKING, then COMPLETED) and the stream; prints its URL."""
    body = stream_body(events)
    gets = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm the body waits for the client's
        # delayed ACK (40 ms on Linux) on every answer. Agent servers (asyncio's) set TCP_NODELAY too.
        disable_nagle_algorithm = True

        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if request["method"] == "tasks/sendSubscribe":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            gets["n"] += 1
            state = "WORKING" if gets["n"] % 2 else "COMPLETED"
            answer = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": task(state)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"URL=http://127.0.0.1:{server.server_port}/a2a/", flush=True)
    server.serve_forever()


def subscribe_payload() -> dict:
    return {"jsonrpc": "2.0", "id": "1", "method": "tasks/sendSubscribe", "params": {"id": TASK_ID}}


def bare_sync(url: str) -> int:
    import requests
    import sseclient

    with requests.post(url, json=subscribe_payload(), stream=True, timeout=60) as response:
        return sum(1 for event in sseclient.SSEClient(response).events() if json.loads(event.data))


def bare_sync_64k(url: str) -> int:
    """The same loop fed whatever the socket has ready (up to 64 KiB) instead of the response's 128-byte
    reads: the bare loop at its best, as ours reads."""
    import requests
    import sseclient

    with requests.post(url, json=subscribe_payload(), stream=True, timeout=60) as response:
        chunks = iter(lambda: response.raw.read1(65536), b"")
        return sum(1 for event in sseclient.SSEClient(chunks).events() if json.loads(event.data))


async def bare_async(url: str) -> int:
    import httpx
    import httpx_sse

    count = 0
    async with httpx.AsyncClient(timeout=60) as client, \
            httpx_sse.aconnect_sse(client, "POST", url, json=subscribe_payload()) as source:
        async for event in source.aiter_sse():
            count += bool(json.loads(event.data))
    return count


def quiet_logger() -> logging.Logger:
    """A logger that formats every record (the cost of logging) and writes it nowhere."""
    logger = logging.getLogger("bench.follow")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.NullHandler()
    handler.handle = lambda record: bool(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    return logger


def ours_sync(url: str) -> int:
    from airflow_agentvault.protocol.client import AgentClient, TaskFollower
    from airflow_agentvault.protocol.timing import Timing

    outcome = TaskFollower(AgentClient(url), Timing(read_timeout=60, overall_timeout=600),
                           logger=quiet_logger()).follow(TASK_ID)
    return int(outcome.metadata()["events_seen"])


async def ours_async(url: str) -> int:
    from airflow_agentvault.protocol.async_client import AsyncAgentClient, AsyncTaskFollower
    from airflow_agentvault.protocol.timing import Timing

    client = AsyncAgentClient(url)
    try:
        outcome = await AsyncTaskFollower(client, Timing(read_timeout=60, overall_timeout=600),
                                          logger=quiet_logger()).follow(TASK_ID)
    finally:
        await client.aclose()
    return int(outcome.metadata()["events_seen"])


def run_side(side: str, url: str, tracing: str) -> None:
    """One side in this (child) process: prints events, seconds and peak RSS as JSON."""
    import asyncio

    from _tracing import set_tracing

    set_tracing(tracing)

    runner = {"bare-sync": bare_sync, "bare-sync-64k": bare_sync_64k, "ours-sync": ours_sync,
              "bare-async": bare_async, "ours-async": ours_async}[side]
    warm_up(side)
    started, cpu_started = time.perf_counter(), time.process_time()
    events = asyncio.run(runner(url)) if side.endswith("async") else runner(url)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"events": events, "seconds": seconds, "cpu": cpu,  # ru_maxrss is in KiB on Linux
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def warm_up(side: str) -> None:
    """Imports and schema builds happen once per process, before any stream: not part of the path."""
    if side.startswith("bare"):
        import httpx  # noqa: F401
        import httpx_sse  # noqa: F401
        import requests  # noqa: F401
        import sseclient  # noqa: F401
        return
    from airflow_agentvault.protocol import async_client, client, models  # noqa: F401

    models.build_all()


def measure(side: str, url: str, tracing: str = "off") -> dict:
    out = subprocess.run([sys.executable, __file__, "--side", side, "--url", url, "--trace", tracing],
                         capture_output=True, text=True, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def with_server(events: int, work) -> object:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(events)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("URL="):
            raise RuntimeError("the stream server did not start")
        return work(line.strip().split("=", 1)[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="events in the throughput stream")
    parser.add_argument("--memory", default="10000,100000", help="stream lengths for the peak-memory rows")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (interleaved); the fastest counts")
    parser.add_argument("--tracing", default="off",
                        help=f"tracing modes of our sides, comma-separated: {', '.join(TRACING_MODES)}")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trace", default="off", choices=TRACING_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    if args.side:
        return run_side(args.side, args.url, args.trace)
    tracings = [t for t in args.tracing.split(",") if t]
    if not tracings or set(tracings) - set(TRACING_MODES):
        parser.error(f"--tracing takes a comma-separated list of {', '.join(TRACING_MODES)}")
    # label -> (side, tracing mode); with one tracing mode the labels are the sides
    sides = {(f"{side}/{t}" if len(tracings) > 1 and side.startswith("ours") else side): (side, t)
             for side in SIDES for t in (tracings if side.startswith("ours") else tracings[:1])}
    off = "/off" if len(tracings) > 1 and "off" in tracings else "" if len(tracings) == 1 else f"/{tracings[0]}"

    print(f"{args.events:,} one-word events; each side in its own process, fastest of {args.repeat} "
          "interleaved runs\n")
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for side, (runner, tracing) in sides.items():
            row = with_server(args.events, lambda url, runner=runner, tracing=tracing: measure(runner, url, tracing))
            if side not in best or row["seconds"] < best[side]["seconds"]:
                best[side] = {**row, "cpu": min(row["cpu"], best.get(side, row)["cpu"])}
            else:
                best[side]["cpu"] = min(row["cpu"], best[side]["cpu"])
    print(f"{'side':<17} {'events':>8} {'seconds':>8} {'events/s':>10} {'CPU s':>7} {'events/CPU s':>13} "
          f"{'peak RSS MB':>12}")
    rates, cpu_rates = {}, {}
    for side in sides:
        row = best[side]
        rates[side], cpu_rates[side] = row["events"] / row["seconds"], row["events"] / row["cpu"]
        print(f"{side:<17} {row['events']:>8,} {row['seconds']:>8.2f} {rates[side]:>10,.0f} {row['cpu']:>7.2f} "
              f"{cpu_rates[side]:>13,.0f} {row['peak_rss_mb']:>12.1f}")
    for label, by in (("events per second", rates), ("events per CPU second (steady under load)", cpu_rates)):
        print(f"\nours / bare, {label}: sync {by['ours-sync' + off] / by['bare-sync']:.2f}, "
              f"async {by['ours-async' + off] / by['bare-async']:.2f} (target >= 0.8); "
              f"sync against the bare loop fed 64 KiB reads {by['ours-sync' + off] / by['bare-sync-64k']:.2f} "
              "(target >= 0.9)")
    if len(tracings) > 1:
        print("\nevents per CPU second, against tracing absent (1.00 = the same):")
        for runner in ("ours-sync", "ours-async"):
            base = cpu_rates.get(f"{runner}/absent")
            cells = ", ".join(f"{t} {cpu_rates[f'{runner}/{t}'] / base:.2f}" for t in tracings if base)
            print(f"  {runner}: {cells or 'no absent side to compare with'}")

    print(f"\npeak RSS of the follower by stream length (MiB)\n{'events':>8} {'ours-sync':>10} {'ours-async':>11}")
    peaks: list[tuple[int, float, float]] = []
    for count in (int(n) for n in args.memory.split(",")):
        sync = with_server(count, lambda url: measure("ours-sync", url, sides["ours-sync" + off][1]))
        asyncio_ = with_server(count, lambda url: measure("ours-async", url, sides["ours-async" + off][1]))
        peaks.append((count, sync["peak_rss_mb"], asyncio_["peak_rss_mb"]))
        print(f"{count:>8,} {sync['peak_rss_mb']:>10.1f} {asyncio_['peak_rss_mb']:>11.1f}")
    if len(peaks) > 1:
        (first, sync_first, async_first), (last, sync_last, async_last) = peaks[0], peaks[-1]
        print(f"\ngrowth from {first:,} to {last:,} events: sync {sync_last - sync_first:+.2f} MiB, "
              f"async {async_last - async_first:+.2f} MiB (goal < 2 MiB)")


if __name__ == "__main__":
    threading.excepthook = lambda hook_args: None  # the server's threads end with the benchmark
    main()
