"""
The 7-stage research pipeline's wall time under a real Airflow, against Airflow's own floor and fixed sleeps.

From one run on the same seven reference agents: the pipeline in split form (22 tasks), compact
form (8 tasks) and its seven stages worker-free (started and ended in the triggerer) or deferring from
a worker, under a real scheduler on SQLite, chains of as many trivial tasks (the floor Airflow's
scheduling sets), and a hand-written orchestrator's fixed-sleep strategy driving the same agents outside
Airflow. Each scheduling mode (Airflow's stock scheduler timing, the harness's tuned one) gets its own
Airflow; both measure the same DAG files against the same agents.

    .venv/bin/python benchmarks/pipeline_overhead.py [--topic "coral reef bleaching"] [--repeat 2]
        [--modes stock,tuned] [--forms split,compact,worker-free] [--agent-work 0] [--skip-fixed-sleeps]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fixed_sleep_strategy import fixed_sleep_wait  # noqa: E402

from agentvault_stack.agent.research import start_research_agents  # noqa: E402
from agentvault_stack.testing import PROVIDER_MODULES, AirflowStack  # noqa: E402
from airflow_agentvault.pipelines.research import STAGES, connection_id  # noqa: E402
from airflow_agentvault.protocol.client import AgentClient  # noqa: E402
from airflow_agentvault.protocol.models import DataPart, Message, TextPart  # noqa: E402
from airflow_agentvault.protocol.result import outcome_of  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run_seconds(stack: AirflowStack, dag_id: str, conf: dict) -> float:
    run_id = stack.trigger(dag_id, conf)
    state = stack.wait_for_run(dag_id, run_id, timeout=900)
    if state != "success":
        raise SystemExit(f"{dag_id} ended {state}: {stack.task_states(dag_id, run_id)}")
    run = stack.get_run(dag_id, run_id)
    started, ended = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    return (ended - started).total_seconds()


def fixed_sleep_pipeline(urls: dict[str, str], topic: str) -> float:
    """The fixed-sleep recipe, stage after stage, passing each result on as the DAGs do."""
    started = time.monotonic()
    previous = None
    for stage_id, text in STAGES:
        client = AgentClient(urls[stage_id])
        data = {"topic": topic} if previous is None else {"topic": topic, "previous": previous}
        message = Message(role="user", parts=[TextPart(content=text.replace("{{ params.topic }}", topic)),
                                              DataPart(content=data)])
        task = fixed_sleep_wait(client, client.send(message))
        previous = outcome_of(task, agent_url=client.rpc_url)
    return time.monotonic() - started


#: form -> its rows: (what, DAG id, tasks, the floor it is compared with)
FORMS = {
    "split": [("split form (initiate >> sensor >> stream)", "research_pipeline", 22, "trivial_chain_22"),
              ("Airflow floor: 22 trivial chained tasks", "trivial_chain_22", 22, "trivial_chain_22")],
    "compact": [("compact form (one task per stage)", "research_pipeline_compact", 8, "trivial_chain_8"),
                ("Airflow floor: 8 trivial chained tasks", "trivial_chain_8", 8, "trivial_chain_8")],
    "worker-free": [("7 stages worker-free (in the triggerer)", "research_at_scale_worker_free", 7, "trivial_chain_7"),
                    ("7 stages deferring from a worker", "research_at_scale_deferrable_runs", 7, "trivial_chain_7"),
                    ("Airflow floor: 7 trivial chained tasks", "trivial_chain_7", 7, "trivial_chain_7")],
}
#: mode -> (AirflowStack keyword arguments, what it is)
MODES = {
    "stock": ({"fast_scheduling": False},
              "Airflow's default scheduler loop and heartbeats, as `airflow standalone` runs"),
    "tuned": ({"fast_scheduling": True}, "the test harness's fast scheduler loop and heartbeats (FAST_SCHEDULING)"),
    "preload": ({"fast_scheduling": True, "preload_modules": PROVIDER_MODULES},
                "tuned, and the LocalExecutor's workers preload Airflow and the provider (forkserver preload)"),
}


def measure(mode: str, work: Path, dags: Path, env: dict[str, str], conf: dict, repeat: int,
            warmup: int, dag_ids: list[str]) -> dict[str, float]:
    """Median wall time of each DAG under a fresh Airflow in the given mode, after untimed warm-up rounds
    (a fresh Airflow's first runs pay one-time costs: worker start, first imports, cold caches)."""
    times: dict[str, list[float]] = {}
    with AirflowStack(home=work / f"home-{mode}", dags_folder=dags, extra_env=env, **MODES[mode][0]) as stack:
        for dag_id in dag_ids:
            stack.wait_for_dag(dag_id, timeout=120)
        for round_ in range(warmup + repeat):
            label = f"warm-up {round_ + 1}" if round_ < warmup else f"round {round_ - warmup + 1}"
            for dag_id in dag_ids:
                seconds = run_seconds(stack, dag_id, conf)
                if round_ >= warmup:
                    times.setdefault(dag_id, []).append(seconds)
                print(f"  {mode} {label}: {dag_id} {seconds:.1f} s", file=sys.stderr, flush=True)
    return {dag_id: statistics.median(v) for dag_id, v in times.items()}


def print_table(mode: str, med: dict[str, float], repeat: int, forms: list[str]) -> None:
    print(f"\n{mode}: {MODES[mode][1]}; median of {repeat} runs after warm-up (wall time of the DAG run)\n")
    print(f"{'what':<44}{'tasks':>6}{'wall s':>9}{'vs floor':>10}")
    for label, dag_id, tasks, floor in (row for form in forms for row in FORMS[form]):
        print(f"{label:<44}{tasks:>6}{med[dag_id]:>9.1f}{med[dag_id] / med[floor]:>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="coral reef bleaching")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first, in each mode (default 1)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"modes to run, comma-separated: {', '.join(MODES)}")
    parser.add_argument("--forms", default=",".join(FORMS), help=f"forms to run, comma-separated: {', '.join(FORMS)}")
    parser.add_argument("--skip-fixed-sleeps", action="store_true", help="skip the ~70 s fixed-sleep strategy run")
    parser.add_argument("--agent-work", type=float, default=0.0,
                        help="simulated work per agent task in seconds (default 0: only the agents' real "
                             "computation, so the pipeline's figures are Airflow's and the provider's overhead)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes takes a comma-separated list of {', '.join(MODES)}")
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    if not forms or set(forms) - set(FORMS):
        parser.error(f"--forms takes a comma-separated list of {', '.join(FORMS)}")
    dag_ids = list(dict.fromkeys(row[1] for form in forms for row in FORMS[form]))

    work = Path(tempfile.mkdtemp(prefix="pipeline-overhead-"))
    dags = work / "dags"
    # Only the DAGs under test: the dag-processor re-parses every file while the runs go on, and the
    # report's consumer DAG would run between the measured runs.
    dags.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "research_pipeline.py", dags)
    shutil.copy(Path(__file__).parent / "dags" / "trivial_chains.py", dags)
    shutil.copy(Path(__file__).parent / "dags" / "research_at_scale.py", dags)  # the 7-stage DAGs, one topic a run
    conf = {"topic": args.topic}
    results: dict[str, dict[str, float]] = {}
    try:
        with start_research_agents(base_port=0, work_seconds=args.agent_work) as agents:
            env = {f"AIRFLOW_CONN_{connection_id(s).upper()}": json.dumps({"conn_type": "agentvault", "host": u})
                   for s, u in agents.urls.items()}
            env["AGENTVAULT_REPORTS_DIR"] = str(work / "reports")
            for mode in modes:
                results[mode] = measure(mode, work, dags, env, conf, args.repeat, args.warmup, dag_ids)
            sleeps = None if args.skip_fixed_sleeps else fixed_sleep_pipeline(agents.urls, args.topic)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nResearch pipeline for {args.topic!r}; agents' simulated work {args.agent_work:g} s per task")
    for mode, med in results.items():
        print_table(mode, med, args.repeat, forms)
    if sleeps is not None:
        print(f"\nfixed-sleep strategy (10 s sleeps), outside Airflow, same agents: {sleeps:.1f} s")
        for mode, med in results.items():
            faster = ", ".join(f"{label.split(' (')[0]} {sleeps / med[dag_id]:.1f}x" for form in forms
                               for label, dag_id, _, floor in FORMS[form] if dag_id != floor)
            print(f"{mode}, faster than the fixed-sleep strategy: {faster}")


if __name__ == "__main__":
    main()
