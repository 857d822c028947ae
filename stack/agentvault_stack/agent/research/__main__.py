"""Command line: run all seven research agents until SIGINT/SIGTERM.

``python -m agentvault_stack.agent.research [--base-port 0] [--tokens-per-second N] [--host H]
[--no-questions]``

Prints ``AGENT <stage> <rpc_url>`` for each stage, in pipeline order, then ``READY``; exits 0 after a
clean shutdown, 1 if an agent's server dies, 2 on bad arguments or a failed start.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from agentvault_stack.agent.research.documents import Corpus
from agentvault_stack.agent.research.runner import DEFAULT_WORK_SECONDS, research_agents


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agentvault_stack.agent.research",
        description="Run the seven reference research agents (topic_research, crawl, extract, verify, "
        "synthesize, edit, visualize) on loopback, one port each.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1).")
    parser.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="First of 7 consecutive ports, in stage order; 0 (default) picks free ports.",
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=None,
        help="Stream each answer word by word at this pace, like a slow local LLM (default: one message).",
    )
    parser.add_argument(
        "--work-seconds",
        type=float,
        default=DEFAULT_WORK_SECONDS,
        help=f"Simulated work per task besides the tokens (default {DEFAULT_WORK_SECONDS}).",
    )
    parser.add_argument("--corpus", default=None,
                        help="Folder of Markdown documents to research (default: the shipped corpus, or "
                             "$AGENTVAULT_RESEARCH_CORPUS).")
    parser.add_argument("--no-questions", dest="ask", action="store_false", default=None,
                        help="Never ask which reading of an ambiguous topic is meant (e.g. 'mercury'): take "
                             "the first (default: ask, unless $AGENTVAULT_RESEARCH_QUESTIONS is off).")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        agents = research_agents(
            args.base_port,
            args.tokens_per_second,
            host=args.host,
            work_seconds=args.work_seconds,
            log_level=args.log_level,
            corpus=Corpus.load(args.corpus) if args.corpus else None,
            ask=args.ask,
        )
        agents.start()
    except (OSError, ValueError, RuntimeError, TimeoutError) as exc:  # a missing corpus folder too
        print(f"research agents: failed to start: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        for stage, url in agents.urls.items():
            print(f"AGENT {stage} {url}", flush=True)
        print("READY", flush=True)
        while not stop.wait(0.2):  # short waits: prompt signal handling, and notice a dead server
            if not agents.running:
                print("research agents: a server thread exited", file=sys.stderr, flush=True)
                return 1
    finally:
        agents.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
