"""A token-by-token stream reads as sentences in the task log, never a line per token."""

from __future__ import annotations

from airflow_agentvault.protocol.describe import LINE_SECONDS, LogLines
from airflow_agentvault.protocol.models import Message, TaskMessageEvent, TaskState, TaskStatusEvent, TextPart


def token(text: str) -> TaskMessageEvent:
    return TaskMessageEvent(task_id="t-1", message=Message(role="assistant", parts=[TextPart(content=text)]))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tokens_become_one_line_per_sentence():
    written: list[str] = []
    lines = LogLines(written.append, Clock())
    for word in "Reefs bleach in heat. They recover slowly.".split():
        lines.add(token(word))
    assert written == ["assistant says: Reefs bleach in heat.", "assistant says: They recover slowly."]


def test_a_long_pause_or_another_event_ends_the_line():
    clock, written = Clock(), []
    lines = LogLines(written.append, clock)
    lines.add(token("Thinking"))
    clock.now += LINE_SECONDS
    lines.add(token("hard"))
    lines.add(token("again"))
    lines.add(TaskStatusEvent(task_id="t-1", state=TaskState.COMPLETED))
    assert written == ["assistant says: Thinking hard", "assistant says: again", "state -> COMPLETED"]


def test_a_whole_message_is_its_own_line():
    written: list[str] = []
    lines = LogLines(written.append, Clock())
    lines.add(token("Hello there, this is one message."))
    assert written == ["assistant says: Hello there, this is one message."]
