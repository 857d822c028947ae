"""
Completion overhead: time from starting a task to holding its result, minus the agent's own work.

Our default timing (existence check with growing interval, SSE, tasks/get) against a hand-written orchestrator's
fixed-sleep strategy, on the same reference agent in one run, for several work durations.

    .venv/bin/python benchmarks/completion_overhead.py [--work 0.5 2 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _agent import reference_agent  # noqa: E402
from fixed_sleep_strategy import fixed_sleep_wait  # noqa: E402

from airflow_agentvault.protocol.client import (
    AgentClient,  # noqa: E402
    TaskFollower,  # noqa: E402
)
from airflow_agentvault.protocol.models import Message, TextPart  # noqa: E402
from airflow_agentvault.protocol.timing import Timing  # noqa: E402


class _Quiet:
    def info(self, *args, **kwargs):
        pass

    warning = info


def ours(client: AgentClient, task_id: str):
    follower = TaskFollower(client, Timing(), logger=_Quiet())
    follower.wait_until_visible(task_id)
    return follower.follow(task_id).task


def measure(client: AgentClient, strategy, work: float) -> float:
    message = Message(role="user", parts=[TextPart(content="benchmark")],
                      metadata={"reference_agent": {"work_seconds": work}})
    started = time.monotonic()
    task_id = client.send(message)
    task = strategy(client, task_id)
    assert task.state.value == "COMPLETED", task.state
    return time.monotonic() - started - work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=float, nargs="+", default=[0.5, 2.0, 5.0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'work s':>7} {'ours: overhead s':>17} {'sleeps: overhead s':>17} {'sleeps / ours':>12}")
    with reference_agent() as url:
        client = AgentClient(url)
        for work in args.work:
            our = statistics.median(measure(client, ours, work) for _ in range(args.repeat))
            sleeps = statistics.median(measure(client, fixed_sleep_wait, work) for _ in range(args.repeat))
            print(f"{work:>7.1f} {our:>17.3f} {sleeps:>17.3f} {sleeps / max(our, 1e-6):>11.0f}x", flush=True)


if __name__ == "__main__":
    main()
