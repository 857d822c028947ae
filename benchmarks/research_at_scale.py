"""
The research pipeline over 100 topics with slow agents: worker-free, deferrable and synchronous,
LocalExecutor against CeleryExecutor with two workers, under a real Airflow.

The seven research agents think ``--think`` seconds per stage (a slow local LLM). Each executor gets
one fresh Airflow with ``--slots`` task slots, on Postgres (LocalExecutor with preloaded workers and
one triggerer; CeleryExecutor on Redis with two workers and two triggerers), measures its floor (a
chain of seven trivial tasks), then runs the pipeline over the topics in each mode, one after the
other:

- ``deferrable``, ``sync``: one run of the mapped pipeline over all topics (a mapped stage cannot
  start in the triggerer: Airflow reads only class-level start arguments for mapped tasks);
- ``worker-free``: one run per topic of the unmapped compact pipeline, each stage starting and
  ending in the triggerer; ``topic-defer``: the same runs with the stages deferring from a worker.

While a mode runs, a sampler reads the task states and the triggerers' CPU and memory every second.
Printed per mode:

- wall time (first run's start to last run's end) against the ideal: the slowest topic's agent time
  (seven stages of ``--think``) plus twice the seven-task floor;
- worker slots busy: task-slot seconds held by running tasks over ``topics x wall`` (a synchronous
  stage holds its slot while its agent thinks; a deferred one gives it back; a worker-free one never
  takes one);
- triggerer CPU seconds and peak memory (all triggerer processes together);
- metadata-database rows added per topic (every table, counted before and after the run).

    .venv/bin/python benchmarks/research_at_scale.py                       # 100 topics, 30 s per stage
    .venv/bin/python benchmarks/research_at_scale.py --topics 5 --think 2 --executors local
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from agentvault_stack.agent.research import start_research_agents
from agentvault_stack.testing import PROVIDER_MODULES, AirflowStack, DistributedAirflowStack
from airflow_agentvault.pipelines.research import STAGES, connection_id

HERE = Path(__file__).resolve().parent
TOPICS_FILE = HERE / "topics_100.txt"
FLOOR_DAG = "trivial_chain_7"
STAGE_COUNT = len(STAGES)
#: A hundred task processes call the API server at once: two of its workers (the test stacks run one).
API_WORKERS = {"AIRFLOW__API__WORKERS": "2"}


def run_wall(stack: AirflowStack, dag_id: str, run_id: str, timeout: float) -> float:
    """Wait for the run by reading the database: with a hundred task processes talking to it, the API
    server can be slower to answer than the stack's REST helpers wait."""
    return runs_wall(stack, dag_id, [run_id], timeout)


def runs_wall(stack: AirflowStack, dag_id: str, run_ids: list[str], timeout: float) -> float:
    """Wait for all ``run_ids`` of ``dag_id``; seconds from the first one's start to the last one's end."""
    deadline = time.monotonic() + timeout
    marks = ", ".join("?" * len(run_ids))
    query = f"SELECT state, start_date, end_date FROM dag_run WHERE dag_id = ? AND run_id IN ({marks})"
    while True:
        runs = stack.query(query, [dag_id, *run_ids])
        waiting = [r["state"] for r in runs if r["state"] not in ("success", "failed")]
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{dag_id}: {len(waiting)} runs still {waiting[0]} after {timeout:.0f} s")
        stack.check_alive()
        time.sleep(2)
    if any(r["state"] != "success" for r in runs):
        failed = stack.query(f"SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? "
                             f"AND run_id IN ({marks}) AND state != 'success'", [dag_id, *run_ids])
        raise SystemExit(f"{dag_id}: a run failed; tasks not successful: {failed[:10]}")
    return (max(r["end_date"] for r in runs) - min(r["start_date"] for r in runs)).total_seconds()


#: mode -> (DAG id, one run per topic)
MODES = {"deferrable": ("research_at_scale_deferrable", False), "sync": ("research_at_scale_sync", False),
         "worker-free": ("research_at_scale_worker_free", True),
         "topic-defer": ("research_at_scale_deferrable_runs", True)}


def start_runs(stack: AirflowStack, mode: str, topics: list[str]) -> list[str]:
    """The mapped modes' one run over all topics, or one run per topic, triggered back to back."""
    dag_id, per_topic = MODES[mode]
    if not per_topic:
        return [stack.trigger(dag_id, {"topics": topics})]
    stack.unpause(dag_id)
    return [stack.api("POST", f"dags/{dag_id}/dagRuns", json_body={"logical_date": None, "conf": {"topic": t}})
            ["dag_run_id"] for t in topics]


def table_rows(stack: AirflowStack) -> dict[str, int]:
    """Rows in every table of the metadata database."""
    names = [r["name"] for r in stack.query("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")]
    return {name: stack.query(f'SELECT count(*) AS n FROM "{name}"')[0]["n"] for name in names}


def triggerer_processes(stack: AirflowStack) -> list[psutil.Process]:
    procs = []
    for comp in stack.components.values():
        if comp.kind == "triggerer" and comp.alive():
            root = psutil.Process(comp.popen.pid)
            procs += [root, *root.children(recursive=True)]
    return procs


class Sampler(threading.Thread):
    """Once a second: task instances by state, the triggerers' summed RSS and CPU seconds."""

    def __init__(self, stack: AirflowStack, dag_id: str, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.stack, self.dag_id, self.period = stack, dag_id, period
        self.samples: list[dict] = []
        self.halt = threading.Event()
        self.cpu_start = self._triggerer_cpu()

    def _triggerer_cpu(self) -> float:
        total = 0.0
        for proc in triggerer_processes(self.stack):
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def _triggerer_rss(self) -> int:
        total = 0
        for proc in triggerer_processes(self.stack):
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def run(self) -> None:
        started = time.monotonic()
        while not self.halt.wait(self.period):
            rows = self.stack.query(
                "SELECT state, count(*) AS n FROM task_instance WHERE dag_id = ? GROUP BY state", [self.dag_id])
            states = {r["state"]: r["n"] for r in rows}
            self.samples.append({"t": time.monotonic() - started, "running": states.get("running", 0),
                                 "deferred": states.get("deferred", 0), "rss": self._triggerer_rss()})

    def finish(self) -> dict:
        self.halt.set()
        self.join(timeout=30)
        cpu = self._triggerer_cpu() - self.cpu_start
        slot_seconds = sum(s["running"] * self.period for s in self.samples)
        return {"slot_seconds": slot_seconds, "peak_running": max((s["running"] for s in self.samples), default=0),
                "peak_deferred": max((s["deferred"] for s in self.samples), default=0),
                "triggerer_cpu_s": cpu,
                "triggerer_peak_rss_mib": max((s["rss"] for s in self.samples), default=0) / 2**20,
                "series": [(round(s["t"], 1), s["running"]) for s in self.samples]}


def make_stack(executor: str, home: Path, dags: Path, env: dict[str, str], slots: int) -> AirflowStack:
    """Both executors on Postgres: SQLite is not meant for a hundred concurrent task processes (its
    writers wait on one lock, and a triggerer that waits too long exits with "database is locked")."""
    if executor == "local":
        local = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", **API_WORKERS}
        return DistributedAirflowStack(home=home, dags_folder=dags, extra_env={**env, **local}, parallelism=slots,
                                       workers=0, triggerers=1, preload_modules=PROVIDER_MODULES,
                                       fault_detection=False, ready_timeout=300)
    per_worker = {"AIRFLOW__CELERY__WORKER_CONCURRENCY": str(-(-slots // 2)), **API_WORKERS}
    return DistributedAirflowStack(home=home, dags_folder=dags, extra_env={**env, **per_worker}, parallelism=slots,
                                   workers=2, triggerers=2, fault_detection=False, ready_timeout=300)


def measure_executor(executor: str, work: Path, dags: Path, env: dict[str, str], topics: list[str],
                     think: float, slots: int, modes: list[str], results: list[dict]) -> None:
    """Append a row to ``results`` as each run ends, so a stopped benchmark keeps what it measured."""
    with make_stack(executor, work / f"home-{executor}", dags, env, slots) as stack:
        for dag_id in (FLOOR_DAG, *(MODES[m][0] for m in modes)):
            stack.wait_for_dag(dag_id, timeout=300)
        run_wall(stack, FLOOR_DAG, stack.trigger(FLOOR_DAG), timeout=300)  # warm-up: first-run costs
        floor = run_wall(stack, FLOOR_DAG, stack.trigger(FLOOR_DAG), timeout=300)
        print(f"  {executor}: floor of {STAGE_COUNT} trivial tasks {floor:.1f} s", file=sys.stderr, flush=True)
        bound = STAGE_COUNT * think * (len(topics) / slots + 1) + 1800
        for mode in modes:
            dag_id = MODES[mode][0]
            before = table_rows(stack)
            sampler = Sampler(stack, dag_id)  # each mode's DAG runs only in its own turn
            sampler.start()
            try:
                wall = runs_wall(stack, dag_id, start_runs(stack, mode, topics), timeout=bound)
            finally:
                sampled = sampler.finish()
            after = table_rows(stack)
            added = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
            ideal = STAGE_COUNT * think + 2 * floor
            results.append({"executor": executor, "mode": mode, "topics": len(topics), "slots": slots,
                            "wall_s": wall, "floor_s": floor, "ideal_s": ideal,
                            "busy": sampled["slot_seconds"] / (len(topics) * wall),
                            "rows_per_topic": sum(added.values()) / len(topics), "rows_added": added, **sampled})
            print(f"  {row_line(results[-1])}", file=sys.stderr, flush=True)  # a long run's rows as they come


HEADER = (f"{'executor':<9}{'mode':<12}{'slots':>6}{'wall s':>8}{'ideal s':>9}{'wall/ideal':>11}{'slots busy':>11}"
          f"{'peak run':>9}{'trig CPU s':>11}{'trig MiB':>9}{'rows/topic':>11}")


def row_line(r: dict) -> str:
    return (f"{r['executor']:<9}{r['mode']:<12}{r['slots']:>6}{r['wall_s']:>8.0f}{r['ideal_s']:>9.0f}"
            f"{r['wall_s'] / r['ideal_s']:>11.2f}{r['busy']:>10.1%}{r['peak_running']:>9}"
            f"{r['triggerer_cpu_s']:>11.1f}{r['triggerer_peak_rss_mib']:>9.0f}{r['rows_per_topic']:>11.1f}")


def print_results(results: list[dict], think: float) -> None:
    topics = results[0]["topics"]
    print(f"\n{topics} topics x {STAGE_COUNT} stages, agents think {think:g} s per stage; "
          f"ideal = slowest topic's agent time + 2 x floor of {STAGE_COUNT} trivial tasks\n")
    print(HEADER)
    for r in results:
        print(row_line(r))
    by = {(r["executor"], r["mode"]): r for r in results}
    for executor in dict.fromkeys(r["executor"] for r in results):
        d = by.get((executor, "deferrable"))
        for mode in ("sync", "worker-free", "topic-defer"):
            if d and (other := by.get((executor, mode))):
                print(f"{executor}: {mode} holds {other['slot_seconds'] / max(d['slot_seconds'], 1e-9):.2f}x the "
                      f"slot-seconds of deferrable; wall {mode} / deferrable {other['wall_s'] / d['wall_s']:.2f}")
    print("\nrows added per topic, by table:")
    tables = sorted({t for r in results for t in r["rows_added"]})
    print(f"{'table':<32}" + "".join(f"{r['executor'][:5] + '/' + r['mode'][:6]:>14}" for r in results))
    for table in tables:
        print(f"{table:<32}" + "".join(f"{r['rows_added'].get(table, 0) / topics:>14.1f}" for r in results))


def write_plot(results: list[dict], path: Path) -> None:
    """Running task instances over time, one line per run, as an SVG."""
    width, height, left, bottom, top = 640, 300, 50, 40, 30
    colours = ["#1565c0", "#c62828", "#2e7d32", "#ef6c00"]
    t_max = max(t for r in results for t, _ in r["series"]) or 1
    y_max = max(r["slots"] for r in results)

    def xy(t: float, n: int) -> str:
        return (f"{left + t / t_max * (width - left - 20):.1f},"
                f"{height - bottom - n / y_max * (height - bottom - top):.1f}")

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="16" font-size="13">Task instances running (worker slots held), '
             f'{results[0]["topics"]} topics</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 20}" y2="{height - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">seconds since the run started '
             f'(0 - {t_max:.0f})</text>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{y_max}</text>',
             f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>']
    for i, r in enumerate(results):
        colour = colours[i % len(colours)]
        points = " ".join(xy(t, n) for t, n in r["series"])
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{width - 180}" y="{top + 14 * i + 10}" fill="{colour}">'
                     f'{r["executor"]} {r["mode"]}</text>')
    parts.append("</svg>\n")
    path.write_text("\n".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=100, help="how many topics of benchmarks/topics_100.txt")
    parser.add_argument("--think", type=float, default=30.0, help="seconds each agent thinks per stage")
    parser.add_argument("--slots", type=int, default=100, help="task slots per executor (Celery: split over 2 workers)")
    parser.add_argument("--executors", default="local,celery", help="comma-separated: local, celery")
    parser.add_argument("--modes", default="worker-free,deferrable,sync",
                        help=f"comma-separated, run in this order: {', '.join(MODES)}")
    parser.add_argument("--plot", type=Path, help="write the running-tasks plot (SVG) here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    executors = [e for e in args.executors.split(",") if e]
    modes = [m for m in args.modes.split(",") if m]
    if set(executors) - {"local", "celery"} or set(modes) - set(MODES) or not executors or not modes:
        parser.error(f"--executors takes local,celery and --modes {','.join(MODES)}")
    topics = TOPICS_FILE.read_text().split("\n")[: args.topics]
    topics = [t for t in topics if t]
    if len(topics) < args.topics:
        parser.error(f"{TOPICS_FILE.name} has {len(topics)} topics")

    work = Path(tempfile.mkdtemp(prefix="research-at-scale-"))
    dags = work / "dags"
    dags.mkdir()
    shutil.copy(HERE / "dags" / "research_at_scale.py", dags)
    shutil.copy(HERE / "dags" / "trivial_chains.py", dags)
    results: list[dict] = []
    try:
        with start_research_agents(base_port=0, work_seconds=args.think, ask=False) as agents:
            env = {f"AIRFLOW_CONN_{connection_id(s).upper()}": json.dumps({"conn_type": "agentvault", "host": u})
                   for s, u in agents.urls.items()}
            for executor in executors:
                measure_executor(executor, work, dags, env, topics, args.think, args.slots, modes, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if results:  # also what a failed or stopped benchmark measured before
            print_results(results, args.think)
            if args.plot:
                write_plot(results, args.plot)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
