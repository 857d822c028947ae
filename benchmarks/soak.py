"""
A soak run: a distributed Airflow (CeleryExecutor, Postgres, Redis, two workers, two triggerers) keeps a
few hundred agent stages in flight, synchronous, deferred and worker-free, against the reference agent and
an a2a-sdk server, each behind a fault proxy that adds random faults, while a worker, a triggerer and the
reference agent are killed and started again at random moments. Each DAG gets a new run as soon as its last
one ended, until the time is up; then the runs in flight end and every stage is checked:

- it holds exactly the agent's own result (read straight from the agent), or failed with a typed error;
- no remote task was started twice (sends counted per stage at the proxy);
- no stage was left unfinished;
- the triggerers' and workers' memory is flat after warm-up: per process, the median of the last third of its
  samples is at most --flat-mib above the middle third's (the first third is warm-up; a restart starts a new
  series).

The random seed is printed first: the same seed draws the same faults and kills again.

    .venv/bin/python benchmarks/soak.py                         # 30 minutes, 210 stages in flight
    .venv/bin/python benchmarks/soak.py --minutes 3 --stages 24 --seed 7 --kill-every 40
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from agentvault_stack.testing.soak import Soak, SoakConfig, SoakReport
from agentvault_stack.testing.soak_parts import FLAT_MIB, a2a_sdk_agent_spec, reference_agent_spec

A2A_AGENT = Path(__file__).resolve().parents[1] / "tests" / "interop" / "a2a_v1_agent.py"


def summary(report: SoakReport, flat_mib: float) -> str:
    cfg = report.config
    lines = [
        f"seed {cfg.seed}, {cfg.minutes:g} min, executor {cfg.executor}, wall {report.wall / 60:.1f} min, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        "",
        "| Figure | Value |",
        "| --- | --- |",
        f"| DAG runs | {report.runs} |",
        f"| Stages | {sum(report.stages.values())} (peak in flight {report.peak_in_flight}) |",
    ]
    lines += [f"| Stages: {outcome} | {n} |" for outcome, n in sorted(report.stages.items())]
    lines += [f"| Typed error: {name} | {n} |" for name, n in sorted(report.errors.items())]
    lines.append(f"| Stages retried with a new remote task after the agent lost theirs | {report.resent_after_loss} |")
    lines.append(f"| Faults injected | {sum(report.faults.values())} "
                 f"({', '.join(f'{k} {n}' for k, n in sorted(report.faults.items()) if n)}) |")
    lines.append(f"| Kills and restarts | {', '.join(f'{k} {n}' for k, n in sorted(report.restarts.items()))} |")
    lines.append(f"| End conditions | {'all hold' if report.ok else f'{len(report.problems)} broken'} |")
    lines += ["", "Memory (RSS MiB) over each process's life, six evenly spaced samples; flat = last third's median "
              f"within {flat_mib:g} MiB of the middle third's:", "",
              "| Process | Samples | Over time (MiB) | Middle / last third median | Verdict |",
              "| --- | --- | --- | --- | --- |"]
    for s in report.memory:
        thirds = s.thirds()
        medians = f"{thirds[1]:.0f} / {thirds[2]:.0f}" if thirds else "-"
        over = " ".join(f"{v:.0f}" for v in s.at_fractions())
        lines.append(f"| {s.component} (pid {s.pid}) | {len(s.samples)} | {over} | {medians} | "
                     f"{s.verdict(flat_mib)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long new runs are started")
    parser.add_argument("--stages", type=int, default=210, help="stages in flight at once (over 3 modes x 2 agents)")
    parser.add_argument("--seed", type=int, help="random seed of the faults and kills (default: a new one)")
    parser.add_argument("--executor", choices=("celery", "local"), default="celery")
    parser.add_argument("--kill-every", type=float, default=180.0, help="seconds between kills, on average")
    parser.add_argument("--fault-every", type=float, default=8.0, help="seconds between new fault rules, on average")
    parser.add_argument("--work-seconds", type=float, default=20.0, help="each agent's work per stage")
    parser.add_argument("--sample-every", type=float, default=15.0, help="seconds between memory samples")
    parser.add_argument("--flat-mib", type=float, default=FLAT_MIB, help="memory growth still called flat")
    parser.add_argument("--agent-flag", action="append", default=[],
                        help="a command-line flag for the reference agent, e.g. a persistent task store "
                             "(repeat for several)")
    parser.add_argument("--json", type=Path, help="write the figures and memory series here")
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home and logs (the path is printed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    print(f"random seed {seed} (repeat with --seed {seed})", flush=True)

    config = SoakConfig(minutes=args.minutes, stages=args.stages, seed=seed, executor=args.executor,
                        kill_every=args.kill_every, fault_every=args.fault_every, sample_every=args.sample_every)
    agents = [reference_agent_spec(args.work_seconds, flags=tuple(args.agent_flag)),
              a2a_sdk_agent_spec(A2A_AGENT, args.work_seconds)]
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    started = time.strftime("%H:%M:%S")
    try:
        report = Soak(config, agents, work, say=lambda line: print(line, flush=True)).run()
    finally:
        if args.keep:
            print(f"Airflow home and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for problem in report.problems:
        print("PROBLEM", problem)
    memory_grows = [s for s in report.memory if s.verdict(args.flat_mib) == "grows"]
    print(f"\nstarted {started}\n" + summary(report, args.flat_mib))
    if args.json:
        args.json.write_text(json.dumps({
            "seed": seed, "stages": report.stages, "faults": report.faults, "restarts": report.restarts,
            "errors": report.errors, "causes": report.causes, "sent": report.sent, "problems": report.problems,
            "runs": report.runs, "wall_s": report.wall,
            "memory": [{"component": s.component, "pid": s.pid, "samples": s.samples} for s in report.memory],
        }, indent=1))
    return 0 if report.ok and not memory_grows else 1


if __name__ == "__main__":
    sys.exit(main())
