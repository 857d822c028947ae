"""
The 7-stage research pipeline's wall time under a real Airflow, against Airflow's own floor and the seed.

From one run on the same seven reference agents: the pipeline in split form (22 tasks) and compact
form (8 tasks) under a real scheduler on SQLite, chains of as many trivial tasks (the floor Airflow's
scheduling sets), and the seed orchestrator's fixed-sleep strategy driving the same agents outside
Airflow.

    .venv/bin/python benchmarks/pipeline_overhead.py [--topic "coral reef bleaching"] [--repeat 2]
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
from seed_strategy import seed_wait  # noqa: E402

from airflow_agentvault.agent.research import start_research_agents  # noqa: E402
from airflow_agentvault.pipelines.research import STAGES, connection_id  # noqa: E402
from airflow_agentvault.protocol.client import AgentVaultClient  # noqa: E402
from airflow_agentvault.protocol.models import DataPart, Message, TextPart  # noqa: E402
from airflow_agentvault.protocol.result import outcome_of  # noqa: E402
from airflow_agentvault.testing import AirflowStack  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run_seconds(stack: AirflowStack, dag_id: str, conf: dict) -> float:
    run_id = stack.trigger(dag_id, conf)
    state = stack.wait_for_run(dag_id, run_id, timeout=900)
    if state != "success":
        raise SystemExit(f"{dag_id} ended {state}: {stack.task_states(dag_id, run_id)}")
    run = stack.get_run(dag_id, run_id)
    started, ended = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    return (ended - started).total_seconds()


def seed_pipeline(urls: dict[str, str], topic: str) -> float:
    """The seed's recipe, stage after stage, passing each result on as the DAGs do."""
    started = time.monotonic()
    previous = None
    for stage_id, text in STAGES:
        client = AgentVaultClient(urls[stage_id])
        data = {"topic": topic} if previous is None else {"topic": topic, "previous": previous}
        message = Message(role="user", parts=[TextPart(content=text.replace("{{ params.topic }}", topic)),
                                              DataPart(content=data)])
        task = seed_wait(client, client.send(message))
        previous = outcome_of(task, agent_url=client.rpc_url)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="coral reef bleaching")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-seed", action="store_true", help="skip the ~75 s seed strategy run")
    parser.add_argument("--agent-work", type=float, default=0.0,
                        help="simulated work per agent task in seconds (default 0: only the agents' real "
                             "computation, so the pipeline's figures are Airflow's and the provider's overhead)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pipeline-overhead-"))
    dags = work / "dags"
    # Only the DAGs under test: the dag-processor re-parses every file while the runs go on, and the
    # report's consumer DAG would run between the measured runs.
    dags.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "research_pipeline.py", dags)
    shutil.copy(Path(__file__).parent / "dags" / "trivial_chains.py", dags)
    conf = {"topic": args.topic}
    times: dict[str, list[float]] = {}
    try:
        with start_research_agents(base_port=0, work_seconds=args.agent_work) as agents:
            env = {f"AIRFLOW_CONN_{connection_id(s).upper()}": json.dumps({"conn_type": "agentvault", "host": u})
                   for s, u in agents.urls.items()}
            env["AGENTVAULT_REPORTS_DIR"] = str(work / "reports")
            with AirflowStack(home=work / "home", dags_folder=dags, extra_env=env) as stack:
                dag_ids = ["research_pipeline", "trivial_chain_22", "research_pipeline_compact", "trivial_chain_8"]
                for dag_id in dag_ids:
                    stack.wait_for_dag(dag_id, timeout=120)
                for round_ in range(args.repeat):
                    for dag_id in dag_ids:
                        times.setdefault(dag_id, []).append(run_seconds(stack, dag_id, conf))
                        print(f"  round {round_ + 1}: {dag_id} {times[dag_id][-1]:.1f} s", file=sys.stderr, flush=True)
            seed = None if args.skip_seed else seed_pipeline(agents.urls, args.topic)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nResearch pipeline for {args.topic!r}, median of {args.repeat} runs (wall time of the DAG run)\n")
    print(f"{'what':<44}{'tasks':>6}{'wall s':>9}{'vs floor':>10}")
    rows = [("split form (initiate >> sensor >> stream)", "research_pipeline", 22, "trivial_chain_22"),
            ("Airflow floor: 22 trivial chained tasks", "trivial_chain_22", 22, "trivial_chain_22"),
            ("compact form (one task per stage)", "research_pipeline_compact", 8, "trivial_chain_8"),
            ("Airflow floor: 8 trivial chained tasks", "trivial_chain_8", 8, "trivial_chain_8")]
    for label, dag_id, tasks, floor in rows:
        print(f"{label:<44}{tasks:>6}{med[dag_id]:>9.1f}{med[dag_id] / med[floor]:>9.2f}x")
    if seed is not None:
        print(f"{'seed strategy (10 s sleeps), outside Airflow':<44}{'-':>6}{seed:>9.1f}")
        print(f"\nsplit form is {seed / med['research_pipeline']:.1f}x faster than the seed strategy, "
              f"compact form {seed / med['research_pipeline_compact']:.1f}x")


if __name__ == "__main__":
    main()
