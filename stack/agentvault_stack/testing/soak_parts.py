"""The pieces of a soak run that do not drive Airflow: agents that can be killed and restarted on their port,
random fault and kill schedules from one random number generator (so a run repeats from its seed), and the
memory samples of the triggerers and workers with the rule that calls a series flat.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

from agentvault_stack.testing import fault_proxy as fp
from agentvault_stack.testing.airflow_stack import free_port

#: A series is flat when the median of its last third is at most this many MiB above its middle third's.
FLAT_MIB = 32.0
#: Fewer samples than this, and a series is too short to judge (the first third is warm-up).
MIN_SAMPLES = 9
MIB = 2**20


@dataclass(frozen=True)
class AgentSpec:
    """An agent the stages talk to, started as ``argv`` in ``cwd`` (``{port}``: its port; ``{proxy}``: the URL of
    the fault proxy in front of it, for a card that names its endpoint)."""

    name: str
    argv: list[str]
    ready_path: str
    rpc_path: str
    proxy_dialect: str  # how the fault proxy answers "task not found"
    conn_extra: dict[str, Any] = field(default_factory=dict)  # the Airflow connection's extra
    work_text: str = ""  # added to each stage's text (the a2a-sdk agent reads its work time there)
    cwd: Path | None = None


def reference_agent_spec(work_seconds: float, tokens: int = 5, flags: tuple[str, ...] = ()) -> AgentSpec:
    """The reference agent, streaming ``tokens`` words over ``work_seconds``; ``flags`` go to its command line."""
    argv = [sys.executable, "-m", "agentvault_stack.agent", "--port", "{port}", "--log-level", "error",
            "--work-seconds", str(work_seconds), "--tokens", str(tokens), *flags]
    return AgentSpec("reference", argv, "/agent-card.json", "/a2a/", "agentvault")


def a2a_sdk_agent_spec(script: Path, work_seconds: float) -> AgentSpec:
    """The a2a-sdk test agent ``script`` (tests/interop/a2a_v1_agent.py), over JSON-RPC 1.0."""
    argv = [sys.executable, script.name, "--port", "{port}", "--public-url", "{proxy}"]  # its card names the proxy
    return AgentSpec("a2a_sdk", argv, "/.well-known/agent-card.json", "/", "a2a-jsonrpc",
                     {"dialect": "a2a-1.0"}, f"sleep={work_seconds:g} chunks=3", script.parent)


class AgentProcess:
    """One agent in its own session on a port that stays its own across restarts, behind a fault proxy."""

    def __init__(self, spec: AgentSpec, log_dir: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.log_path = log_dir / f"agent-{spec.name}.log"
        self.popen: subprocess.Popen | None = None
        self.proxy = fp.FaultProxy(self.base_url, dialect=spec.proxy_dialect)
        self.restarts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rpc_url(self) -> str:
        """Straight to the agent, past the proxy: where the end check reads the agent's own tasks."""
        return self.base_url + self.spec.rpc_path

    @property
    def proxied_rpc_url(self) -> str:
        return self.proxy.url + self.spec.rpc_path

    def start(self, timeout: float = 60.0) -> None:
        argv = [a.replace("{port}", str(self.port)).replace("{proxy}", self.proxy.url) for a in self.spec.argv]
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(argv, cwd=self.spec.cwd, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"agent {self.spec.name} exited at start (log: {self.log_path})")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + self.spec.ready_path, timeout=2).ok:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"agent {self.spec.name} not ready after {timeout:.0f} s (log: {self.log_path})")
            time.sleep(0.2)  # polling interval of a bounded wait for the agent to listen

    def kill(self) -> None:
        """SIGKILL the agent's whole session, as a crash would: its in-memory tasks die with it."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def restart(self) -> None:
        self.start()
        self.restarts += 1

    def __enter__(self) -> AgentProcess:
        self.proxy.start()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self.proxy.stop()


@dataclass
class SoakConfig:
    minutes: float = 30.0
    stages: int = 210  # in flight at once, split over modes x agents
    seed: int = 0
    executor: str = "celery"  # or "local" (no Celery workers to kill)
    kill_every: float = 180.0  # seconds between kills, on average
    kinds: tuple[str, ...] = ("worker", "triggerer", "agent")
    fault_every: float = 8.0  # seconds between new fault rules, on average
    sample_every: float = 15.0  # seconds between memory samples
    drain_timeout: float = 1200.0  # once the soak time is over, for the runs in flight to end
    timing: dict[str, Any] = field(default_factory=lambda: {
        # a task that died with its agent before anyone saw it is given up after ~25 s of checks
        "verify_attempts": 12, "read_timeout": 30.0, "overall_timeout": 900.0, "poll_interval": 2.0,
        "lost_grace": 10.0})


@dataclass
class SoakReport:
    config: SoakConfig
    stages: Counter[str] = field(default_factory=Counter)  # by outcome
    faults: Counter[str] = field(default_factory=Counter)  # applied, by kind
    restarts: Counter[str] = field(default_factory=Counter)  # by kind
    errors: Counter[str] = field(default_factory=Counter)  # typed errors of failed stages, by name
    causes: dict[str, str] = field(default_factory=dict)  # one message of each typed error
    #: stages whose retry started a new remote task because the agent had lost the first (never finished)
    resent_after_loss: int = 0
    sent: dict[str, str] = field(default_factory=dict)  # each remote task created, and the stage it was sent for
    problems: list[str] = field(default_factory=list)  # each broken end condition, one line each
    memory: list[MemorySeries] = field(default_factory=list)
    peak_in_flight: int = 0
    runs: int = 0
    wall: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


# -- random schedules ---------------------------------------------------------------------------------------


def random_fault(rng: random.Random) -> fp.Fault:
    """One fault a network, a gateway or an agent produces, on a random kind of request, 1-3 times."""
    stream, send = fp.Match(stream=True), fp.Match(rpc_method=tuple(fp.SEND_METHODS))
    times = rng.randint(1, 3)
    choices = [
        lambda: fp.cut_after_events(rng.randint(0, 3), abrupt=rng.random() < 0.5, when=stream, times=times),
        lambda: fp.cut_mid_event(rng.randint(0, 2), when=stream, times=times),
        lambda: fp.stall(rng.uniform(1, 5), after_events=rng.randint(0, 2), when=stream, times=times),
        lambda: fp.damage_json(rng.randint(1, 3), when=stream, times=times),
        lambda: fp.inject_unknown_event(rng.randint(1, 3), when=stream, times=times),
        lambda: fp.wrong_content_type(when=stream, times=times),
        lambda: fp.status(rng.choice([502, 503, 504]), times=times),
        lambda: fp.status(429, retry_after=1, times=times),
        lambda: fp.reset_before_request(times=times),
        lambda: fp.reset_after_request(times=times),
        lambda: fp.status_after_upstream(502, when=send, times=1),
        lambda: fp.latency(rng.uniform(0.5, 3), times=times),
        lambda: fp.delay_visibility(count=rng.randint(1, 3), times=times),
    ]
    return rng.choice(choices)()


@dataclass(frozen=True)
class Kill:
    """At ``at`` seconds, kill one ``kind`` (worker, triggerer, agent) and start it again ``down`` seconds later."""

    at: float
    kind: str
    pick: int
    down: float


def kill_plan(rng: random.Random, duration: float, kinds: list[str], every: float) -> list[Kill]:
    """Kills at random moments of the first 85 % of ``duration``, about one per ``every`` seconds, each kind
    at least once."""
    count = max(len(kinds), round(duration / every))
    order = rng.sample(kinds, len(kinds)) + [rng.choice(kinds) for _ in range(count - len(kinds))]
    times = sorted(rng.uniform(0.1, 0.85) * duration for _ in range(count))
    return [Kill(t, kind, rng.randrange(1 << 16), rng.uniform(2, 10)) for t, kind in zip(times, order, strict=True)]


# -- memory ------------------------------------------------------------------------------------------------


def component_rss(root_pid: int, kind: str) -> int | None:
    """Resident memory of a triggerer (its whole tree) or a Celery worker (the worker and its pool processes,
    without the task processes they fork, which come and go with the work); None once it is gone."""
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=kind == "triggerer")]
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total
    except psutil.NoSuchProcess:
        return None


@dataclass
class MemorySeries:
    """RSS samples of one process incarnation (a restart starts a new series)."""

    component: str
    pid: int
    samples: list[tuple[float, int]] = field(default_factory=list)

    def thirds(self) -> tuple[float, float, float] | None:
        """Median MiB of the first (warm-up), middle and last third, or None while too short."""
        values = [rss / MIB for _t, rss in self.samples]
        if len(values) < MIN_SAMPLES:
            return None
        n = len(values) // 3
        return (statistics.median(values[:n]), statistics.median(values[n:-n]), statistics.median(values[-n:]))

    def verdict(self, flat_mib: float = FLAT_MIB) -> str:
        thirds = self.thirds()
        if thirds is None:
            return "short"
        return "flat" if thirds[2] - thirds[1] <= flat_mib else "grows"

    def at_fractions(self, points: int = 6) -> list[float]:
        """MiB at evenly spaced moments of the series (its memory over time, in a table row)."""
        if not self.samples:
            return []
        idx = [round(i * (len(self.samples) - 1) / (points - 1)) for i in range(points)]
        return [self.samples[i][1] / MIB for i in idx]
