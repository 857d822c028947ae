"""
Stages waiting by push notification against stages waiting by stream, in one triggerer-like process each.

A small A2A 1.0 JSON-RPC agent (its own process) keeps every task WORKING until the release, then ends
them: all at once, or (``--release-over S``) one after another spread evenly over S seconds, as tasks of
real agents end. Ending a task writes its final event on its open subscription, or POSTs a notification
to its registered push URL, stamping when it sent each. Each side runs N ``AgentVaultStreamTrigger``s on one
asyncio loop in its own child process (connection extra ``push`` on or off), so memory, CPU and sockets
are its own. Measured while all N wait (just before the release): resident memory above the process's
baseline, per waiting stage; open sockets; CPU seconds of the whole run. After the release: the time
from the agent sending a task's notification (or final event) to that trigger yielding its event.
The floor row is N minimal triggers that only await an event set in-process: what any waiting trigger
costs in one process, whatever it waits for.

    .venv/bin/python benchmarks/push_waits.py                                  # 1,000 by push, 1,000 by stream
    .venv/bin/python benchmarks/push_waits.py --push 10000 --streams 1000 10000   # the full sizes
    .venv/bin/python benchmarks/push_waits.py --release-over 60                   # tasks ending over a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONN_ID = "bench_push_agent"
#: Notifications the agent has in flight at once (each on its own keep-alive connection).
NOTIFY_CONNECTIONS = 16


# -- the agent ------------------------------------------------------------------------------------------


def agent_app():  # noqa: ANN201 - a Starlette app (imported here: the children need none)
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    configs: dict[str, tuple[str, str]] = {}
    sent: dict[str, float] = {}
    released = asyncio.Event()
    spread = {"start": 0.0, "step": 0.0}  # task t-i ends at start + i * step
    subscribed: set[str] = set()

    def ends_at(task_id: str) -> float:
        return spread["start"] + int(task_id.rsplit("-", 1)[1]) * spread["step"]

    async def until_it_ends(task_id: str) -> None:
        await released.wait()
        await asyncio.sleep(max(0.0, ends_at(task_id) - time.time()))

    def task(task_id: str) -> dict:
        ended = released.is_set() and time.time() >= ends_at(task_id)
        state = "TASK_STATE_COMPLETED" if ended else "TASK_STATE_WORKING"
        return {"id": task_id, "contextId": "c", "status": {"state": state},
                "artifacts": [{"artifactId": "a", "parts": [{"text": f"done {task_id}"}]}] if "COMP" in state else []}

    async def release() -> None:
        await released.wait()
        # A small pool: httpcore walks every connection of a pool on each request and response, so a pool
        # of hundreds made this agent, not the stages, the bottleneck (its CPU went to that walk).
        limits = httpx.Limits(max_connections=NOTIFY_CONNECTIONS)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            gate = asyncio.Semaphore(NOTIFY_CONNECTIONS)

            async def notify(task_id: str, url: str, token: str) -> None:
                await until_it_ends(task_id)
                sent[task_id] = time.time()  # when the task ends, as on the stream side: the agent's queue counts
                async with gate:
                    body = {"statusUpdate": {"taskId": task_id, "contextId": "c",
                                             "status": {"state": "TASK_STATE_COMPLETED"}}}
                    try:
                        await http.post(url, json=body, headers={"X-A2A-Notification-Token": token})
                    except httpx.HTTPError:
                        pass

            await asyncio.gather(*(notify(t, url, token) for t, (url, token) in list(configs.items())))

    async def rpc(request: Request) -> JSONResponse | StreamingResponse:
        body = await request.json()
        method, params, rid = body["method"], body.get("params") or {}, body.get("id")
        if method == "GetTask":
            return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": task(params["id"])})
        if method == "CreateTaskPushNotificationConfig":
            configs[params["taskId"]] = (params["url"], params["token"])
            return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": params})
        if method == "DeleteTaskPushNotificationConfig":
            return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": {}})
        if method == "SubscribeToTask":
            task_id = params["id"]

            async def events():
                subscribed.add(task_id)
                yield f"data: {json.dumps({'jsonrpc': '2.0', 'id': rid, 'result': {'task': task(task_id)}})}\n\n"
                await until_it_ends(task_id)
                sent[task_id] = time.time()
                update = {"statusUpdate": {"taskId": task_id, "contextId": "c",
                                           "status": {"state": "TASK_STATE_COMPLETED"}}}
                yield f"data: {json.dumps({'jsonrpc': '2.0', 'id': rid, 'result': update})}\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": method}})

    async def sent_times(request: Request) -> JSONResponse:
        return JSONResponse(sent)

    async def waiting(request: Request) -> JSONResponse:
        return JSONResponse({"waiting": len(configs) + len(subscribed)})

    async def release_all(request: Request) -> JSONResponse:
        body = await request.json()
        spread.update(start=time.time(), step=float(body.get("over", 0)) / max(1, int(body.get("n", 1))))
        released.set()
        return JSONResponse({})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # noqa: ANN202
        releasing = asyncio.get_running_loop().create_task(release())
        yield
        releasing.cancel()

    return Starlette(routes=[Route("/rpc", rpc, methods=["POST"]), Route("/sent", sent_times), Route("/waiting", waiting),
                             Route("/release", release_all, methods=["POST"])], lifespan=lifespan)


def run_agent(port: int) -> None:
    import uvicorn

    uvicorn.run(agent_app(), host="127.0.0.1", port=port, log_level="error", backlog=4096,
                timeout_keep_alive=300)


# -- a side: N triggers in one process ---------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


@contextlib.contextmanager
def full_collections():  # noqa: ANN201 - yields the list of pauses
    """The pause of each full (generation 2) garbage collection while the block runs, in seconds: one
    stops the event loop while it walks every object, and every wake-up due meanwhile waits."""
    import gc

    pauses: list[float] = []
    started = [0.0]

    def note(phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(note)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(note)


def run_side(url: str, n: int, push: bool, settle: float, over: float, out: str) -> None:
    import logging

    import httpx

    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({
        "conn_type": "agentvault", "host": url,
        "extra": {"dialect": "a2a-1.0", "push": "on" if push else "off", "push_safety_poll": 600}})
    from airflow_agentvault.operators.stage_timing import StageTiming
    from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger

    logging.disable(logging.INFO)
    timing = StageTiming.begin({"read_timeout": 900, "overall_timeout": 1200}).trigger_kwargs()
    resumed: dict[str, float] = {}
    waiting: dict[str, float] = {}

    async def one(task_id: str) -> None:
        async for event in AgentVaultStreamTrigger(CONN_ID, task_id, **timing).run():
            resumed[task_id] = time.time()
            assert event.payload["status"] == "done", event.payload
            return

    async def sample() -> None:
        """Once the agent sees every stage waiting (registered or subscribed), and ``settle`` s more: measure,
        then let the agent end the tasks."""
        base = url.rsplit("/", 1)[0]
        async with httpx.AsyncClient(timeout=60) as http:
            until = time.time() + 600
            while time.time() < until:
                try:
                    if (await http.get(base + "/waiting")).json()["waiting"] >= n:
                        break
                except httpx.HTTPError:  # a busy agent: ask again
                    pass
                await asyncio.sleep(0.5)
            await asyncio.sleep(settle)
            waiting.update(rss_kib=_rss_kib(), sockets=_sockets(), at=time.time())
            await http.post(base + "/release", json={"over": over, "n": n})

    async def main() -> None:
        await asyncio.gather(sample(), *(one(f"t-{i}") for i in range(n)))

    baseline = _rss_kib()
    cpu = os.times()
    with full_collections() as pauses:
        asyncio.run(main())
    after = os.times()
    Path(out).write_text(json.dumps({
        "n": n, "push": push, "baseline_kib": baseline, "waiting": waiting, "resumed": resumed,
        "gc2_max_ms": 1000 * max(pauses, default=0.0),
        "cpu_s": after.user + after.system - cpu.user - cpu.system,
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def run_floor(n: int, out: str) -> None:
    """N triggers that only await an event: the memory any waiting trigger costs in one process."""
    import gc

    from airflow.triggers.base import BaseTrigger, TriggerEvent

    class Waits(BaseTrigger):
        def __init__(self, event: asyncio.Event) -> None:
            super().__init__()
            self.event = event

        def serialize(self) -> tuple[str, dict]:
            return "push_waits.Waits", {}

        async def run(self):  # noqa: ANN202
            await self.event.wait()
            yield TriggerEvent({"status": "done"})

    async def main() -> dict:
        event = asyncio.Event()

        async def one() -> None:
            async for _ in Waits(event).run():
                return

        waiting = [asyncio.create_task(one()) for _ in range(20)]  # warm up
        await asyncio.sleep(0.5)
        gc.collect()
        baseline = _rss_kib()
        waiting += [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.sleep(1.0)
        gc.collect()
        result = {"n": n, "push": None, "baseline_kib": baseline, "waiting": {"rss_kib": _rss_kib(), "sockets": _sockets()},
                  "resumed": {}}
        event.set()
        await asyncio.gather(*waiting)
        return result

    cpu = os.times()
    result = asyncio.run(main())
    after = os.times()
    result.update(cpu_s=after.user + after.system - cpu.user - cpu.system,
                  peak_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    Path(out).write_text(json.dumps(result))


# -- the parent -------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_floor(n: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, __file__, "--floor", str(n), out.name], timeout=600, check=True,
                       stdout=subprocess.DEVNULL)
        result = json.loads(Path(out.name).read_text())
    return {"mode": "floor: a trigger awaiting an event", "n": n, "resumed": n,
            "kib_per_stage": (result["waiting"]["rss_kib"] - result["baseline_kib"]) / n,
            "sockets": result["waiting"]["sockets"], "cpu_s": result["cpu_s"], "peak_mib": result["peak_kib"] / 1024,
            "p50_ms": None, "p99_ms": None, "gc2_max_ms": None}


@contextlib.contextmanager
def running_agent():  # noqa: ANN201 - yields the agent's base URL
    """The benchmark agent in its own process on a free port, once it answers (bounded); stopped after."""
    import httpx

    port = _free_port()
    agent = subprocess.Popen([sys.executable, __file__, "--agent", str(port)])
    try:
        deadline = time.time() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/sent", timeout=1)
                break
            except httpx.HTTPError:
                if time.time() > deadline or agent.poll() is not None:
                    raise RuntimeError("the benchmark agent did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        agent.terminate()
        agent.wait(30)


def measure(n: int, push: bool, settle: float, over: float) -> dict:
    """One side against its own agent; the tasks end ``settle`` s after all wait (spread over ``over`` s)."""
    import httpx

    with running_agent() as base:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            side = subprocess.run([sys.executable, __file__, "--side", f"{base}/rpc", str(n),
                                   "push" if push else "stream", str(settle), str(over), out.name], timeout=settle + over + 900,
                                  stdout=subprocess.DEVNULL)
            if side.returncode != 0:
                raise RuntimeError(f"the {'push' if push else 'stream'} side failed")
            result = json.loads(Path(out.name).read_text())
        sent = httpx.get(f"{base}/sent", timeout=30).json()
    delays = sorted(result["resumed"][t] - sent[t] for t in result["resumed"] if t in sent)
    waiting = result["waiting"]
    return {
        "mode": "push" if push else "stream", "n": n, "resumed": len(result["resumed"]),
        "kib_per_stage": (waiting.get("rss_kib", 0) - result["baseline_kib"]) / n,
        "sockets": waiting.get("sockets"), "cpu_s": result["cpu_s"], "peak_mib": result["peak_kib"] / 1024,
        "p50_ms": 1000 * delays[len(delays) // 2] if delays else None,
        "p99_ms": 1000 * delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else None,
        "gc2_max_ms": result["gc2_max_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--push", type=int, nargs="+", default=[1000], help="stages waiting by push")
    parser.add_argument("--streams", type=int, nargs="+", default=[1000], help="stages waiting by stream")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds the stages wait before the agent ends them (default: 3 s)")
    parser.add_argument("--release-over", type=float, default=0.0, metavar="S",
                        help="end the tasks one after another over S seconds (default 0: all at once)")
    parser.add_argument("--floor", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--agent", nargs=1, help=argparse.SUPPRESS)
    parser.add_argument("--side", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent:
        run_agent(int(args.agent[0]))
        return
    if args.side:
        url, n, mode, settle, over, out = args.side
        run_side(url, int(n), mode == "push", float(settle), float(over), out)
        return
    if args.floor:
        run_floor(int(args.floor[0]), args.floor[1])
        return
    settle = args.settle or 3.0
    rows = [measure(n, True, settle, args.release_over) for n in args.push]
    rows += [measure(n, False, settle, args.release_over) for n in args.streams]
    rows.append(measure_floor(max(args.push + args.streams)))
    print(f"Tasks ending {'all at once' if not args.release_over else f'over {args.release_over:g} s'}.")
    stream_kib = max((r["kib_per_stage"] for r in rows if r["mode"] == "stream"), default=None)
    print("| waiting by | stages | resumed | memory per waiting stage (KiB) | vs stream | open sockets while waiting "
          "| CPU (s) | peak RSS (MiB) | notification -> resumed p50 / p99 (ms) | longest full GC (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['kib_per_stage'] / stream_kib:.2f}x" if stream_kib else "-"
        p = (f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}" if r["p99_ms"] is not None else "-")
        gc2 = f"{r['gc2_max_ms']:.0f}" if r["gc2_max_ms"] is not None else "-"
        print(f"| {r['mode']} | {r['n']:,} | {r['resumed']:,} | {r['kib_per_stage']:.1f} | {ratio} | {r['sockets']} "
              f"| {r['cpu_s']:.1f} | {r['peak_mib']:.0f} | {p} | {gc2} |")


if __name__ == "__main__":
    main()
