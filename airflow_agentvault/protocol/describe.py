"""The readable one-line account of each event, as the task log shows it."""

from __future__ import annotations

import re
from collections.abc import Callable

from airflow_agentvault.protocol.models import (
    Message,
    TaskEvent,
    TaskMessageEvent,
    TaskStatusEvent,
    TextPart,
)


def describe_event(event: TaskEvent) -> str:
    """A readable one-line account of an event for the task log."""
    if isinstance(event, TaskStatusEvent):
        text = f": {event.message_text}" if event.message_text else ""
        return f"state -> {event.state.value}{text}"
    if isinstance(event, TaskMessageEvent):
        return f"{event.message.role} says: {clip(event.message.text or _parts_summary(event.message))}"
    artifact = event.artifact
    kind = artifact.media_type or artifact.type
    where = f" at {artifact.url}" if artifact.url else ""
    return f"artifact '{artifact.id}' ({kind}, {artifact.size} bytes){where}"


def _parts_summary(message: Message) -> str:
    return ", ".join(p.type for p in message.parts)


def clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


#: A gathered line of tokens is written after this many seconds even without a sentence end, so a slow
#: stream still shows progress (several words a line at a local model's pace, never one).
LINE_SECONDS = 5.0
#: Lines longer than this are wrapped at a word boundary: a log view shows about this many characters.
WIDTH = 100
_END_CHARS = frozenset(".!?:\"')]")
_SENTENCE_END = re.compile(r"[.!?:][\"')\]]*$")
#: A line that is only a list marker ("2.", "-") or a Markdown heading waits for its text or its newline.
_NOT_AN_END = re.compile(r"^\s*(\d+[.)]|[-*+]|#+\s.*)$")


class LogLines:
    """
    Writes a stream's events as readable log lines: token-sized messages gathered into what a person reads.

    An agent that streams its answer token by token sends one event per word (or per word piece, with its
    leading space or newline, as LLMs do); a line per event makes a log of hundreds of one-word lines.
    Tokens are gathered into text; a line is written at a newline in the text (headings and list items
    keep their own lines), at a sentence end, after :data:`LINE_SECONDS`, or before any other event;
    lines wider than :data:`WIDTH` are wrapped. Every other event is one line.
    ``enabled``: False when the log would drop the lines anyway (its level is above INFO); the caller
    then skips :meth:`add`, so no line is gathered or built per event.
    """

    def __init__(self, write: Callable[[str], None], *, enabled: bool = True) -> None:
        self.write = write
        self.enabled = enabled
        self.role = ""
        self.pieces: list[str] = []
        self.length = 0
        self.started = 0.0
        #: The stream's tokens carry their own spacing (LLM word pieces): joined as they are, not with spaces.
        #: Known once a token after the first starts with whitespace, so a line is joined when written.
        self.spaced_tokens = False

    def add(self, event: TaskEvent, now: float) -> None:
        """``now``: the caller's clock reading for this event (one read per event serves both)."""
        token = _token_of(event)
        if token is None:
            self.flush()
            self.write(describe_event(event))
            return
        role, text = token
        if role != self.role:
            self.flush()
            self.role = role
        if not self.pieces:
            self.started = now
        elif not self.spaced_tokens and text[:1].isspace():
            self.spaced_tokens = True
        self.pieces.append(text)
        self.length += len(text) + 1
        # only a token that can end a line costs a join: most tokens are appended and nothing else
        if "\n" in text or text.rstrip()[-1:] in _END_CHARS or self.length > WIDTH:
            self._write_complete_lines()
        if now - self.started >= LINE_SECONDS:
            self.flush()

    def _joined(self) -> str:
        return "".join(self.pieces) if self.spaced_tokens else " ".join(self.pieces)

    def _write_complete_lines(self) -> None:
        *done, rest = self._joined().split("\n")
        for line in done:
            self._write(line)
        rest_stripped = rest.strip()
        if _SENTENCE_END.search(rest_stripped) and not _NOT_AN_END.match(rest_stripped):
            rest = ""
            self._write(rest_stripped)
        elif len(rest_stripped) > WIDTH:
            *full, rest = _wrapped(rest_stripped)
            for line in full:
                self._write(line)
        self.pieces = [rest] if rest.strip() else []
        self.length = len(rest)

    def flush(self) -> None:
        if self.pieces:
            self._write(self._joined())
            self.pieces, self.length = [], 0

    def _write(self, line: str) -> None:
        line = line.strip()
        if len(line) <= WIDTH:
            if line:
                self.write(f"{self.role} says: {line}")
            return
        for piece in _wrapped(line):
            self.write(f"{self.role} says: {piece}")


def _wrapped(text: str) -> list[str]:
    """``text`` (stripped, non-empty) in lines of at most :data:`WIDTH`, cut at spaces; a longer word stays whole.

    Not :mod:`textwrap`: this runs on the stream's hot path, and a cut at the last space is all it needs.
    """
    lines = []
    while len(text) > WIDTH:
        cut = text.rfind(" ", 0, WIDTH + 1)
        if cut <= 0:
            cut = text.find(" ", WIDTH)
            if cut < 0:
                break
        lines.append(text[:cut].rstrip())
        text = text[cut + 1:].lstrip()
    lines.append(text)
    return lines


def _token_of(event: TaskEvent) -> tuple[str, str] | None:
    """
    (role, text) of a message event that is one token of a streamed answer, else None.

    Asked of every event, so type comparisons (see :func:`models.ends_wait`) and a split that stops
    at the second word.
    """
    if type(event) is not TaskMessageEvent:
        return None
    message = event.message
    parts = message.parts
    if len(parts) != 1 or type(parts[0]) is not TextPart:
        return None
    text = parts[0].content
    if not text or len(text.split(None, 1)) > 1:
        return None
    return message.role, text
