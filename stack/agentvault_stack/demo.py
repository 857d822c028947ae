"""
The one-command demo: seven research agents, a real Airflow on SQLite, one research run, the report.

It starts the reference research agents on loopback, answering at a local LLM's pace, an Airflow
(scheduler, triggerer, dag-processor, API server; LocalExecutor on SQLite) with its home in the
project's ``.airflow/demo`` folder, creates the agent connections in its metadata database (listed on
the Connections page, where "Test connection" is enabled), triggers the research pipeline for the topic
given, shows the first lines of each stage's answer as it streams and each stage as it finishes
(:mod:`agentvault_stack.demo_console`), and prints where the report and chart are, or why the run
failed. Everything it started stops when the run ends or on Ctrl-C, unless ``--keep-running`` leaves
the UI up.

    bash scripts/demo.sh "coral reef bleaching"
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from agentvault_stack.demo_console import Progress, StreamEcho, failure_reason, failure_report

__all__ = ["DemoError", "Progress", "failure_reason", "main", "run_demo"]
from agentvault_stack import tracing_viewer

#: The checkout the demo runs from (this file is stack/agentvault_stack/demo.py): its dags/, .airflow/, reports/.
REPO = Path(__file__).resolve().parents[2]


class DemoError(RuntimeError):
    """A problem the user can fix; printed as a message, not a traceback."""


def _check_port(port: int) -> None:
    """Refuse a port something listens on; a previous run's closed connections (TIME_WAIT) do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the API server will bind it
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DemoError(f"port {port} on 127.0.0.1 is taken: stop what uses it, or pass --port N") from None
            raise


def _check_setup() -> None:
    if not (Path(sys.prefix) / "bin" / "airflow").exists() and shutil.which("airflow") is None:
        raise DemoError("Airflow is not installed in this environment: run `bash scripts/setup.sh` first")


HOME_MARKER = ".agentvault-demo-home"


def _fresh_home(home: Path) -> Path:
    """Empty the demo's Airflow home, but only one the demo made itself (it carries our marker)."""
    if home.exists() and any(home.iterdir()):
        if not (home / HOME_MARKER).exists():
            raise DemoError(f"{home} is not empty and was not made by the demo: choose another --home")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / HOME_MARKER).write_text("made by the airflow-agentvault demo; emptied on every demo run\n")
    return home


def _connections(urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The agents' connections, ``{conn_id: fields}``, for the metadata DB: listed on the Connections page.

    ``port`` repeats the URL's port (the hook reads the URL): the Connections page's "Test connection"
    button sends a missing port as 0, which Airflow 3.3 rejects as "differs from the stored connection".
    """
    from airflow_agentvault.pipelines.research import connection_id

    return {
        connection_id(stage): {"conn_type": "agentvault", "host": url,
                               **({"port": port} if (port := urlsplit(url).port) else {})}
        for stage, url in urls.items()
    }


#: The agents' pace: a local LLM's (it reads its prompt for a few seconds, then streams its answer). A stage's
#: stream step subscribes about 1 s after the stage's first step sent the task on an idle machine with two
#: cores, 3-5 s when other work keeps both cores busy; thinking this long lets it show each answer arriving
#: while the whole demo stays under 90 s.
DEMO_THINK_SECONDS = 4.0
DEMO_TOKENS_PER_SECOND = 100.0

#: Airflow leaves "Test connection" disabled; the demo's own Airflow turns it on.
DEMO_AIRFLOW_ENV = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}


def _corpus(folder: str | None) -> Any:
    """The research agents' documents: a folder of the user's, or the shipped corpus (None)."""
    if not folder:
        return None
    from agentvault_stack.agent.research.documents import Corpus

    try:
        return Corpus.load(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise DemoError(f"--corpus {folder}: {exc}") from None


#: What the console says of the form the run uses (``--split`` or not).
FORMS = {
    False: "Each stage is one worker-free task: it starts and ends in the triggerer, so no worker slot is held "
           "while an agent thinks (its log says so).",
    True: "Each stage is three tasks on workers: send, wait until visible, stream (the split form).",
}


def run_demo(args: argparse.Namespace) -> int:
    _check_setup()
    _check_port(args.port)
    from agentvault_stack.agent import AgentBehaviour
    from agentvault_stack.agent.research import start_research_agents
    from agentvault_stack.agent.research.runner import DEFAULT_WORK_SECONDS
    from agentvault_stack.testing import PROVIDER_MODULES, AirflowStack
    from airflow_agentvault.protocol.timing import PRESETS

    home = _fresh_home(Path(args.home).resolve())
    reports = Path(args.reports).resolve()
    dag_id = "research_pipeline" if args.split else "research_pipeline_compact"
    conf: dict[str, Any] = {"topic": args.topic}
    if args.preset != "fast":
        conf.update(PRESETS[args.preset].model_dump())
    behaviour = AgentBehaviour(work_seconds=DEFAULT_WORK_SECONDS, think_seconds=args.think_seconds,
                               tokens_per_second=args.tokens_per_second or None)
    pace = (f"thinking {args.think_seconds:g} s, then answering at {args.tokens_per_second:g} tokens/s"
            if args.tokens_per_second else f"thinking {args.think_seconds:g} s, then answering at once")

    t0 = time.monotonic()
    print(f"Starting the research agents ({pace}, as a local LLM would)...", flush=True)
    corpus = _corpus(args.corpus)
    with start_research_agents(base_port=0, behaviour=behaviour, corpus=corpus) as agents:
        env = {**DEMO_AIRFLOW_ENV, "AGENTVAULT_REPORTS_DIR": str(reports), **getattr(args, "trace_env", {})}
        print(f"Starting Airflow (scheduler, triggerer, dag-processor, API server) in {home} ...", flush=True)
        with AirflowStack(home=home, dags_folder=REPO / "dags", extra_env=env, api_port=args.port,
                          preload_modules=PROVIDER_MODULES, connections=_connections(agents.urls)) as stack:
            print(f"Airflow is up after {time.monotonic() - t0:.1f} s: {stack.api_url}", flush=True)
            stack.wait_for_dag(dag_id, timeout=120)
            run_id = stack.trigger(dag_id, conf)
            url = stack.run_ui_url(dag_id, run_id)
            print(f"Triggered {dag_id} for {args.topic!r} ({args.preset} timing)\n  {url}", flush=True)
            print(FORMS[args.split], flush=True)
            state = _follow_run(stack, dag_id, run_id, timeout=args.timeout)
            ok = state == "success"
            if ok:
                info = stack.xcom(dag_id, run_id, "publish_report")
                print(f"\nDone in {time.monotonic() - t0:.1f} s.\n  Report: {_local(info['report'])}")
                if "chart" in info:
                    print(f"  Chart:  {_local(info['chart'])}", flush=True)
            else:
                states = stack.task_states(dag_id, run_id)

                def raw_log(task_id: str) -> str:
                    return "\n".join(p.read_text(errors="replace") for p in stack.task_log_files(dag_id, run_id, task_id))

                def log_path(task_id: str) -> Path | None:
                    tries = [p for p in stack.task_log_files(dag_id, run_id, task_id) if ".trigger." not in p.name]
                    return tries[-1] if tries else None

                print(f"\nThe run ended {state} after {time.monotonic() - t0:.1f} s.", flush=True)
                print(failure_report(states, raw_log, log_path=log_path, ui_url=url if args.keep_running else None,
                                     topic=args.topic), flush=True)
            if args.keep_running:
                if ok:
                    print(f"  Run:    {url}", flush=True)
                print(f"\nThe Airflow UI stays up until Ctrl-C: {stack.api_url}\nNo login is needed (everyone who opens "
                      f"it is an admin; it listens on 127.0.0.1 only). The agents' connections are at "
                      f"{stack.api_url}/connections, where \"Test connection\" fetches each agent's card.",
                      flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        stack.check_alive()
                        time.sleep(1)
            elif ok:
                print("  The Airflow UI stopped with the demo; add --keep-running to look at the run there.",
                      flush=True)
    return 0 if ok else 1


def _follow_run(stack: Any, dag_id: str, run_id: str, *, timeout: float) -> str:
    started = time.monotonic()
    progress = Progress(started)

    def header(task_id: str) -> str:
        where = f"{stack.api_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
        return (f"Each agent streams its answer into its stage's task log, live: in the UI, the run above, then a "
                f"stage's task, e.g. {task_id}, where the report is written ({where}).\n"
                "The first lines of each answer:")

    echo = StreamEcho(lambda task_id: stack.task_log_files(dag_id, run_id, task_id), started, header=header,
                      watch="synthesize")
    deadline = time.monotonic() + timeout
    asked: set[str] = set()
    while True:
        stack.check_alive()
        states = stack.task_states(dag_id, run_id)
        echo.update(states)
        progress.update(states)
        for task_id in sorted(t for t, s in states.items() if s == "awaiting_input" and t not in asked):
            asked.add(task_id)
            _show_question(stack, dag_id, run_id, task_id)
        state = stack.get_run(dag_id, run_id)["state"]
        if state in ("success", "failed"):
            states = stack.task_states(dag_id, run_id)
            echo.update(states)
            progress.update(states)
            return state
        if time.monotonic() > deadline:
            raise DemoError(f"the run did not finish within {timeout:g} s (raise --timeout)")
        time.sleep(0.5)


def _show_question(stack: Any, dag_id: str, run_id: str, task_id: str) -> None:
    """An agent asks: say what, and where a person answers (the run waits for them)."""
    path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
    subject = stack.api("GET", path).get("subject", "an agent asks a question")
    where = f"{stack.api_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/required_actions"
    print(f"  {subject}\n    answer under Required Actions: {where}", flush=True)


def _local(location: str) -> str:
    return location[len("file://"):] if location.startswith("file://") else location


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops the demo the way Ctrl-C does: through the context managers that clean up."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Run the research pipeline once, end to end, on this machine: seven reference research "
                    "agents and a real Airflow (LocalExecutor on SQLite).")
    parser.add_argument("topic", nargs="?", default="solar power adoption", help="what to research")
    parser.add_argument("--preset", choices=["fast", "slow_llm"], default="fast", help="timing preset of the run")
    parser.add_argument("--split", action="store_true",
                        help="three tasks per stage (send, wait until visible, stream) on workers, instead of one "
                             "worker-free task per stage")
    parser.add_argument("--compact", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument("--tokens-per-second", type=float, default=DEMO_TOKENS_PER_SECOND,
                        help="how fast the agents stream their answers, token by token, as a local LLM does; "
                             "0: each answer in one message")
    parser.add_argument("--think-seconds", type=float, default=DEMO_THINK_SECONDS,
                        help="how long each agent thinks before its answer's first token")
    parser.add_argument("--port", type=int, default=8080, help="port of the Airflow UI on 127.0.0.1")
    parser.add_argument("--home", default=argparse.SUPPRESS,
                        help="AIRFLOW_HOME of the demo (default: .airflow/demo in the repository)")
    parser.add_argument("--reports", default=argparse.SUPPRESS,
                        help="where reports and charts go (default: reports/ in the repository)")
    parser.add_argument("--corpus", default=argparse.SUPPRESS,
                        help="a folder of your own Markdown, text or HTML files for the research agents to work "
                             "on; front matter (title, source, date, url, topic) makes their references exact "
                             "(default: the shipped corpus; see docs/corpus.md)")
    parser.add_argument("--timeout", type=float, default=900, help="give up on the run after this many seconds")
    parser.add_argument("--keep-running", action="store_true", help="leave the UI up until Ctrl-C")
    parser.add_argument("--trace", action="store_true", help="trace the run and show it in a trace viewer "
                        "(Arize Phoenix, installed on first use); prints the viewer's URL")
    args = parser.parse_args(argv)
    if args.tokens_per_second < 0 or args.think_seconds < 0:
        parser.error("--tokens-per-second and --think-seconds take 0 or more")
    args.home = getattr(args, "home", None) or str(REPO / ".airflow" / "demo")
    args.reports = getattr(args, "reports", None) or str(REPO / "reports")
    args.corpus = getattr(args, "corpus", None)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tracing_viewer.for_demo(args.trace) as args.trace_env:
            return run_demo(args)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopped; every process the demo started has been stopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
