"""The readable one-line account of each event, as the task log shows it."""

from __future__ import annotations

from collections.abc import Callable

from airflow_agentvault.protocol.models import (
    Message,
    TaskEvent,
    TaskMessageEvent,
    TaskStatusEvent,
    TextPart,
    join_fragments,
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


#: A gathered line of tokens is written after this many seconds even without a sentence end.
LINE_SECONDS = 1.0
_LINE_ENDS = (".", "!", "?", ":", ";", "\n")


class LogLines:
    """
    Writes a stream's events as readable log lines: token-sized messages gathered into sentences.

    An agent that streams its answer token by token sends one event per word; a line per event makes a
    log of hundreds of one-word lines. Tokens are joined into one line, written at a sentence end, a
    newline, after :data:`LINE_SECONDS`, or before any other event; every other event is one line.
    ``enabled``: False when the log would drop the lines anyway (its level is above INFO); the caller
    then skips :meth:`add`, so no line is gathered or built per event.
    """

    def __init__(self, write: Callable[[str], None], *, enabled: bool = True) -> None:
        self.write = write
        self.enabled = enabled
        self.role = ""
        self.tokens: list[str] = []
        self.started = 0.0

    def add(self, event: TaskEvent, now: float) -> None:
        """``now``: the caller's clock reading for this event (one read per event serves both)."""
        token = _token_of(event)
        if token is None:
            self.flush()
            self.write(describe_event(event))
            return
        role, text = token
        if self.tokens and role != self.role:
            self.flush()
        if not self.tokens:
            self.role, self.started = role, now
        self.tokens.append(text)
        if text.rstrip(" ").endswith(_LINE_ENDS) or now - self.started >= LINE_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.tokens:
            self.write(f"{self.role} says: {clip(join_fragments(self.tokens))}")
            self.tokens = []


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
