"""What the demo prints while the run goes: each stage as it ends, the first lines of each answer as the
agent streams it, and, when the run fails, which stage failed and why, in the agent's words.

Everything here reads what Airflow already records (task states from the REST API, the task log files
on this machine); nothing asks an agent again.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Task states of a stage that did not run because a stage before it failed.
NOT_RUN = frozenset({"upstream_failed", "skipped"})
#: How wide the console's wrapped text is.
WIDTH = 100
#: A streamed line in a task log: ``[<agent task id>] assistant says: <text>``.
_SAYS = re.compile(r"^\[[^\]]+\] (\w+) says: (.*)$")
#: A typed error written as text (not inside a structured record).
_TYPED = re.compile(r"\b(\w+Error): ([^\n\"]{0,2000})")
#: What the provider's message adds around an agent's reason (``TaskFailedError``).
_AGENT_FAILED = re.compile(
    r"^agent (?:failed|rejected) the task: (?:skill [\w.-]+ failed: )?(?P<words>.*?)(?: \[agent [^\]]*\])?$", re.S)


def stage_of(task_id: str) -> str:
    return task_id.split(".", 1)[0]


def _elapsed(started: float) -> str:
    return f"{time.monotonic() - started:6.1f} s"


class Progress:
    """Prints each stage once when it finishes, in pipeline order: done, FAILED, or not run (a stage before it
    failed)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.reported: set[str] = set()

    def update(self, states: dict[str, str | None]) -> None:
        stages: dict[str, list[str | None]] = {}
        for task_id, state in states.items():
            stages.setdefault(stage_of(task_id), []).append(state)
        for stage, stage_states in stages.items():
            if stage in self.reported:
                continue
            if "failed" in stage_states:
                mark = "FAILED"
            elif all(s in NOT_RUN for s in stage_states):
                mark = "not run"
            elif all(s == "success" for s in stage_states):
                mark = "done"
            else:
                break  # stages are told in pipeline order: a later one waits for this one
            self.reported.add(stage)
            print(f"  {_elapsed(self.started)}  {stage:<16} {mark}", flush=True)


def is_stream_task(task_id: str) -> bool:
    """The task of a stage whose log shows the agent's answer arriving: ``<stage>.stream`` (split form),
    ``<stage>`` or ``<stage>.run`` (one task per stage)."""
    return "." not in task_id or task_id.endswith((".stream", ".run"))


class StreamEcho:
    """Prints where to watch the answers stream (``header``, given the stream task of stage ``watch``, else
    the first), then the first lines of each stage's answer as its stream task logs them.

    ``log_files(task_id)``: the task's log files on this machine; each is read from where the last
    read stopped, complete lines only, so a long stream costs one small read per call.
    """

    def __init__(self, log_files: Callable[[str], list[Path]], started: float, *,
                 lines_per_stage: int = 2, header: Callable[[str], str] | None = None, watch: str = "") -> None:
        self.log_files = log_files
        self.watch = watch
        self.started = started
        self.lines_per_stage = lines_per_stage
        self.header = header
        self.offsets: dict[Path, int] = {}
        self.shown: dict[str, int] = {}
        self.finished: set[str] = set()

    def update(self, states: dict[str, str | None]) -> None:
        if self.header is not None:  # once, before anything streams: where to watch it all
            stream_tasks = [task_id for task_id in states if is_stream_task(task_id)]
            first = next((t for t in stream_tasks if stage_of(t) == self.watch), stream_tasks[0] if stream_tasks else None)
            if first is not None:
                print(self.header(first), flush=True)
                self.header = None
        for task_id, state in states.items():
            if not is_stream_task(task_id) or task_id in self.finished or state in (None, "scheduled", "queued"):
                continue
            stage = stage_of(task_id)
            for role, text in self._new_lines(task_id):
                if self.shown.get(stage, 0) >= self.lines_per_stage:
                    break
                self.shown[stage] = self.shown.get(stage, 0) + 1
                line = textwrap.shorten(text, WIDTH - 30, placeholder=" ...")
                print(f"  {_elapsed(self.started)}  {stage:<16} {role}: {line}", flush=True)
            if state in ("success", "failed"):
                self.finished.add(task_id)

    def _new_lines(self, task_id: str) -> Iterator[tuple[str, str]]:
        for path in self.log_files(task_id):
            start = self.offsets.get(path, 0)
            try:
                with path.open("rb") as log:
                    log.seek(start)
                    data = log.read()
            except OSError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            self.offsets[path] = start + len(complete)
            for raw in complete.decode(errors="replace").splitlines():
                match = _SAYS.match(_event_of(raw))
                if match:
                    yield match.group(1), match.group(2)


def _event_of(line: str) -> str:
    """The message of one log line: a structured record's ``event``, else the line itself."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return line
        if isinstance(record, dict) and isinstance(record.get("event"), str):
            return record["event"]
    return line


def failure_of(log: str) -> tuple[str, str] | None:
    """``(error type, message)`` of the last typed error a task's log names, raw (JSON) lines or text."""
    found: list[tuple[str, str]] = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            found += _TYPED.findall(line)
            continue
        found += list(_exceptions(record))
    return (found[-1][0], found[-1][1].strip()) if found else None


def failure_reason(log: str) -> str:
    """The last typed error a task's log names (``TaskFailedError: agent failed the task: ...``)."""
    found = failure_of(log)
    return f"{found[0]}: {found[1][:600]}" if found else "see its log"


def _exceptions(value: Any) -> Iterator[tuple[str, str]]:
    """(type, message) of every exception a structured log record carries (Airflow's ``error_detail``)."""
    if isinstance(value, dict):
        if isinstance(value.get("exc_type"), str) and isinstance(value.get("exc_value"), str):
            yield value["exc_type"], value["exc_value"]
        for item in value.values():
            yield from _exceptions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _exceptions(item)


def agent_reason(error_type: str, message: str) -> str | None:
    """The agent's own words in a ``TaskFailedError`` (without the provider's framing), else None."""
    if error_type != "TaskFailedError":
        return None
    match = _AGENT_FAILED.match(message)
    return match.group("words").strip() if match else None


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _wrap(text: str, indent: str = "    ") -> str:
    return "\n".join(textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                                   break_long_words=False, break_on_hyphens=False)) or indent


def failure_report(states: dict[str, str | None], raw_log: Callable[[str], str], *, ui_url: str | None,
                   log_path: Callable[[str], Path | None] = lambda task_id: None, topic: str = "") -> str:
    """Why the run failed, for the console: the stage that failed, the agent's reason in its words,
    the stages that did not run, and where to look further.

    ``raw_log(task_id)``: the task's log as written (JSON lines); ``ui_url``: the run in the Airflow UI
    while it is up, None once the demo stops it; ``topic``: the run's, for the command that researches
    the user's own documents when the agent points there.
    """
    failed = [task_id for task_id, state in states.items() if state == "failed"]
    stages = list(dict.fromkeys(stage_of(task_id) for task_id in states))
    not_run = [s for s in stages if all(states[t] in NOT_RUN for t in states if stage_of(t) == s)]
    lines: list[str] = []
    if failed:
        stage = stage_of(failed[0])
        found = failure_of(raw_log(failed[0]))
        words = agent_reason(*found) if found else None
        if words is not None:
            lines += [f"The run failed at the {stage} stage. Its agent says:", _wrap(words)]
            if "--corpus" in words:
                lines.append(f"  Your own documents: bash scripts/demo.sh {_quoted(topic or 'topic')} --corpus <folder> "
                             "(docs/corpus.md says what a file needs)")
        elif found is not None:
            lines += [f"The run failed at the {stage} stage ({failed[0]}):", _wrap(f"{found[0]}: {found[1]}")]
        else:
            lines.append(f"The run failed at the {stage} stage ({failed[0]}); its log says why.")
        path = log_path(failed[0])
        if path is not None:
            lines.append(f"  Its log: {path}")
    else:
        lines.append("The run failed before any stage failed (see the scheduler's log).")
    if not_run:
        lines.append(f"Not run, as each needs the stage before it: {', '.join(not_run)}.")
    if ui_url:
        lines.append(f"The run in the Airflow UI: {ui_url}")
    else:
        lines.append("The Airflow UI stopped with the demo; run it again with --keep-running to look at the run "
                     "there.")
    return "\n".join(lines)
