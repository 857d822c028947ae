"""A soak run: a distributed Airflow keeps a few hundred agent stages in flight (synchronous, deferred and
worker-free) against agents behind fault proxies with random fault schedules, while workers, triggerers and
the agent are killed and started again at random moments. It then checks what a user relies on: every stage
holds exactly the agent's own result or failed with a typed error naming its cause, no remote task started
twice, no stage left hanging, and the triggerers' and workers' memory stays flat after warm-up.

One random number generator, seeded from ``SoakConfig.seed``, draws the faults and the kills: a run repeats
from its seed (what Airflow and the machine do in between still varies). ``benchmarks/soak.py`` runs it for
half an hour; ``tests/e2e/test_soak.py`` for a few minutes.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentvault_stack.testing.distributed_stack import DistributedAirflowStack
from agentvault_stack.testing.soak_check import Ledger, check_stages
from agentvault_stack.testing.soak_parts import (
    AgentProcess,
    AgentSpec,
    MemorySeries,
    SoakConfig,
    SoakReport,
    component_rss,
    kill_plan,
    random_fault,
)

__all__ = ["MODES", "Soak", "SoakConfig", "SoakReport"]

MODES = {"sync": (False, False), "deferred": (True, False), "worker_free": (True, True)}
TERMINAL = ("success", "failed")

DAG_FILE = '''\
"""Soak DAGs: {per_dag} agent stages per run, one DAG per mode and agent."""
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_agentvault.operators.stage import AgentVaultStageOperator

TIMING = {timing!r}
for agent, work_text in {agents!r}:
    for mode, (deferrable, worker_free) in {modes!r}.items():
        with DAG(f"soak_{{mode}}_{{agent}}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
                 catchup=False, params={{"wave": Param("w0", type="string")}},
                 default_args={{"retries": 2, "retry_delay": timedelta(seconds=1)}}):
            for i in range({per_dag}):
                AgentVaultStageOperator(
                    task_id=f"stage_{{i:03d}}", agentvault_conn_id=f"soak_{{agent}}",
                    text="soak-key={{{{ params.wave }}}}." + f"{{i:03d}} " + work_text,
                    timing=TIMING, deferrable=deferrable, worker_free=worker_free)
'''


class Soak:
    """One soak run; ``run()`` returns its :class:`SoakReport`. ``say`` receives the progress lines."""

    def __init__(self, config: SoakConfig, agents: list[AgentSpec], work: Path,
                 say: Callable[[str], None] = print) -> None:
        self.config, self.specs, self.work, self.say = config, agents, work, say
        self.rng = random.Random(config.seed)
        self.report = SoakReport(config)
        self.faults: list[Any] = []
        self.series: dict[tuple[str, int], MemorySeries] = {}
        self.per_dag = max(1, -(-config.stages // (len(MODES) * len(agents))))
        self.waves = 0

    def dag_ids(self) -> list[str]:
        return [f"soak_{mode}_{spec.name}" for spec in self.specs for mode in MODES]

    def _write_dags(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        agents = [(spec.name, spec.work_text) for spec in self.specs]
        (folder / "soak_dags.py").write_text(DAG_FILE.format(
            per_dag=self.per_dag, timing=self.config.timing, agents=agents, modes=MODES))

    def _stack(self, agents: dict[str, AgentProcess]) -> DistributedAirflowStack:
        env = {f"AIRFLOW_CONN_SOAK_{name.upper()}": _conn(a) for name, a in agents.items()}
        env["AIRFLOW__API__WORKERS"] = "2"
        env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] = "1000"
        # a Celery message a killed worker had taken comes back after this (Airflow's default: 10 minutes)
        env["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"] = "60"
        env["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL"] = "10"
        kwargs: dict[str, Any] = {"workers": 2, "triggerers": 2, "ready_timeout": 300}
        if self.config.executor == "local":
            env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
            kwargs.update(workers=0, parallelism=16)
        return DistributedAirflowStack(home=self.work / "home", dags_folder=self.work / "dags", extra_env=env,
                                       **kwargs)

    def run(self) -> SoakReport:
        self._write_dags(self.work / "dags")
        started = time.monotonic()
        with contextlib.ExitStack() as stack_of:
            agents = {s.name: stack_of.enter_context(AgentProcess(s, self.work)) for s in self.specs}
            stack = self._stack(agents)
            stack_of.enter_context(stack)
            for dag_id in self.dag_ids():
                stack.wait_for_dag(dag_id, timeout=300)
            self.say(f"stack ready in {time.monotonic() - started:.0f} s; {self.per_dag} stages per run, "
                     f"{self.per_dag * len(self.dag_ids())} in flight")
            ledger = Ledger(agents)
            try:
                self._soak(stack, agents, ledger)
            finally:
                for proxy in (a.proxy for a in agents.values()):
                    proxy.clear()
            self._drain(stack, agents)
            ledger.snapshot()
            for fault in self.faults:
                self.report.faults[fault.kind] += fault.applied
            self.report.memory = list(self.series.values())
            check_stages(stack, agents, ledger, self.dag_ids(), self.per_dag, self.report)
            for agent in agents.values():
                self.report.problems += [f"fault proxy of {agent.spec.name}: {e}" for e in agent.proxy.errors]
        self.report.wall = time.monotonic() - started
        return self.report

    # -- the soak loop --

    def _soak(self, stack: DistributedAirflowStack, agents: dict[str, AgentProcess], ledger: Ledger) -> None:
        cfg = self.config
        duration = cfg.minutes * 60
        kinds = [k for k in cfg.kinds if not (k == "worker" and cfg.executor == "local")]
        plan = kill_plan(self.rng, duration, kinds, cfg.kill_every)
        self.say("kills planned at " + ", ".join(f"{k.at:.0f}s {k.kind}" for k in plan))
        pending: list[tuple[float, Callable[[], None]]] = []  # restarts due
        start = time.monotonic()
        next_fault = next_sample = next_progress = 0.0
        while (now := time.monotonic() - start) < duration:
            self._refill(stack)
            while plan and plan[0].at <= now:
                kill = plan.pop(0)
                pending.append((now + kill.down, self._kill(stack, agents, ledger, kill)))
            for due, restart in [p for p in pending if p[0] <= now]:
                restart()
                pending.remove((due, restart))
            if now >= next_fault:
                agent = self.rng.choice(list(agents.values()))
                self.faults.append(agent.proxy.add(random_fault(self.rng)))
                next_fault = now + self.rng.expovariate(1 / cfg.fault_every)
            if now >= next_sample:
                self._sample(stack, now)
                next_sample = now + cfg.sample_every
            if now >= next_progress:
                self._progress(stack, now)
                next_progress = now + 30
            stack.restart_exited()
            time.sleep(1.0)  # the loop's tick: kills, faults and samples happen on their planned second
        for _due, restart in pending:
            restart()

    def _refill(self, stack: DistributedAirflowStack) -> None:
        """A new run of every DAG whose last run ended: stages stay in flight all the time."""
        rows = stack.query("SELECT dag_id, count(*) AS n FROM dag_run WHERE dag_id LIKE 'soak%' "
                           "AND state NOT IN ('success', 'failed') GROUP BY dag_id")
        busy = {r["dag_id"] for r in rows if r["n"]}
        for dag_id in self.dag_ids():
            if dag_id not in busy:
                self.waves += 1
                wave = f"w{self.waves:04d}"
                stack.trigger(dag_id, {"wave": wave}, run_id=wave)
                self.report.runs += 1

    def _kill(self, stack: DistributedAirflowStack, agents: dict[str, AgentProcess], ledger: Ledger,
              kill: Any) -> Callable[[], None]:
        """Kill what ``kill`` names now; returns what starts it again."""
        if kill.kind == "agent":
            agent = agents["reference"] if "reference" in agents else next(iter(agents.values()))
            ledger.snapshot()  # the agent's finished tasks, before they die with it
            agent.kill()
            self.report.restarts["agent"] += 1
            self.say(f"killed agent {agent.spec.name}; back in {kill.down:.0f} s")
            return agent.restart
        names = sorted(n for n, c in stack.components.items() if c.kind == kill.kind)
        name = names[kill.pick % len(names)]
        stack.kill_component(name)
        self.report.restarts[kill.kind] += 1
        self.say(f"killed {name}; back in {kill.down:.0f} s")
        return lambda: stack.start_component(name)

    def _sample(self, stack: DistributedAirflowStack, now: float) -> None:
        for name, comp in stack.components.items():
            if comp.kind in ("worker", "triggerer") and comp.alive() and comp.popen is not None:
                rss = component_rss(comp.popen.pid, comp.kind)
                if rss is not None:
                    key = (name, comp.popen.pid)
                    self.series.setdefault(key, MemorySeries(name, comp.popen.pid)).samples.append((now, rss))

    def _states(self, stack: DistributedAirflowStack) -> Counter[str]:
        rows = stack.query("SELECT state, count(*) AS n FROM task_instance WHERE dag_id LIKE 'soak%' GROUP BY state")
        return Counter({str(r["state"]): r["n"] for r in rows})

    def _progress(self, stack: DistributedAirflowStack, now: float) -> None:
        states = self._states(stack)
        in_flight = sum(n for s, n in states.items() if s not in TERMINAL)
        self.report.peak_in_flight = max(self.report.peak_in_flight, in_flight)
        faults = sum(f.applied for f in self.faults)
        self.say(f"[{now / 60:5.1f} min] runs {self.report.runs}, stages in flight {in_flight}, "
                 f"done {states['success']} ok / {states['failed']} failed, faults injected {faults}, "
                 f"kills {sum(self.report.restarts.values())}, "
                 + ", ".join(f"{s} {n}" for s, n in sorted(states.items()) if s not in TERMINAL))

    def _drain(self, stack: DistributedAirflowStack, agents: dict[str, AgentProcess]) -> None:
        """Until every run ended (bounded): a run still going then is a hang, reported by the check."""
        deadline = time.monotonic() + self.config.drain_timeout
        self.say("soak time over: no new runs, no new faults; waiting for the runs in flight")
        start = last = time.monotonic()
        while time.monotonic() < deadline:
            left = stack.query("SELECT count(*) AS n FROM dag_run WHERE dag_id LIKE 'soak%' "
                               "AND state NOT IN ('success', 'failed')")[0]["n"]
            if not left:
                return
            stack.restart_exited()
            if time.monotonic() - last > 30:
                self._progress(stack, self.config.minutes * 60 + time.monotonic() - start)
                last = time.monotonic()
            time.sleep(2.0)  # polling interval of a bounded wait for the last runs


def _conn(agent: AgentProcess) -> str:
    return json.dumps({"conn_type": "agentvault", "host": agent.proxied_rpc_url, "extra": agent.spec.conn_extra})


