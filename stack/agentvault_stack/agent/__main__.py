"""Command line: run one reference agent until SIGINT/SIGTERM (``agentvault-reference-agent``).

Prints ``AGENT_URL=http://<host>:<port>`` on one line once serving, so a parent process that
passed ``--port 0`` learns the port. One flag per :class:`AgentBehaviour` field, generated from the
model so the two never drift apart. ``--skill`` picks the work (see ``skills.py``; default ``echo``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any, Union, get_args, get_origin

from agentvault_stack.agent.app import DEFAULT_AGENT_ID, DEFAULT_NAME
from agentvault_stack.agent.behaviour import AgentBehaviour
from agentvault_stack.agent.server import ReferenceAgentServer
from agentvault_stack.agent.skills import get_skill


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _base_type(annotation: Any) -> Any:
    """``float | None`` -> ``float``."""
    if get_origin(annotation) in (Union, types.UnionType):
        return next(arg for arg in get_args(annotation) if arg is not type(None))
    return annotation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentvault-reference-agent",
        description="Run a reference AgentVault A2A agent (JSON-RPC at /a2a/, card at /agent-card.json).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=0, help="Port to bind; 0 picks a free one (default).")
    parser.add_argument("--name", default=DEFAULT_NAME, help="Card name.")
    parser.add_argument("--id", dest="agent_id", default=DEFAULT_AGENT_ID, help="Card humanReadableId.")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning).")
    parser.add_argument(
        "--skill",
        default="echo",
        help="What the agent does: echo (default), a research stage (topic_research, crawl, extract, "
        "verify, synthesize, edit, visualize) or module:attr.",
    )
    parser.add_argument(
        "--task-store",
        default=os.environ.get("AGENTVAULT_AGENT_TASK_STORE") or None,
        metavar="PATH",
        help="SQLite file that keeps tasks across restarts (env AGENTVAULT_AGENT_TASK_STORE); a task that was "
        "running when the agent stopped is run again from its start. Default: tasks live in memory.",
    )
    behaviour = parser.add_argument_group("behaviour (defaults: a fast agent that succeeds)")
    for name, field in AgentBehaviour.model_fields.items():
        kind = _base_type(field.annotation)
        help_text = f"{field.description} (default: {field.default})"
        if kind is bool:
            behaviour.add_argument(_flag(name), dest=name, action="store_true", default=None, help=help_text)
        else:
            behaviour.add_argument(_flag(name), dest=name, type=kind, default=None, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = {name: getattr(args, name) for name in AgentBehaviour.model_fields}
    behaviour = AgentBehaviour(**{k: v for k, v in values.items() if v is not None})
    try:
        skill = get_skill(args.skill)
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"reference agent: {exc}", file=sys.stderr, flush=True)
        return 2

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    server = ReferenceAgentServer(
        behaviour,
        host=args.host,
        port=args.port,
        name=args.name,
        agent_id=args.agent_id,
        log_level=args.log_level,
        skill=skill,
        task_store=args.task_store,
    )
    server.start()
    print(f"AGENT_URL={server.url}", flush=True)
    try:
        # Short waits so signals are handled promptly and a crashed server thread ends the process.
        while not stop.wait(0.2):
            if not server.running:
                print("reference agent: server thread exited", file=sys.stderr, flush=True)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
