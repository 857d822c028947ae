"""A token-by-token stream reads as sentences in the task log, never a line per token."""

from __future__ import annotations

from airflow_agentvault.protocol.describe import LINE_SECONDS, LogLines
from airflow_agentvault.protocol.models import Message, TaskMessageEvent, TaskState, TaskStatusEvent, TextPart


def token(text: str) -> TaskMessageEvent:
    return TaskMessageEvent(task_id="t-1", message=Message(role="assistant", parts=[TextPart(content=text)]))


def test_tokens_become_one_line_per_sentence():
    written: list[str] = []
    lines = LogLines(written.append)
    for word in "Reefs bleach in heat. They recover slowly.".split():
        lines.add(token(word), 0.0)
    assert written == ["assistant says: Reefs bleach in heat.", "assistant says: They recover slowly."]


def test_a_long_pause_or_another_event_ends_the_line():
    written: list[str] = []
    lines = LogLines(written.append)
    lines.add(token("Thinking"), 0.0)
    lines.add(token("hard"), LINE_SECONDS)
    lines.add(token("again"), LINE_SECONDS)
    lines.add(TaskStatusEvent(task_id="t-1", state=TaskState.COMPLETED), LINE_SECONDS)
    assert written == ["assistant says: Thinking hard", "assistant says: again", "state -> COMPLETED"]


def test_a_whole_message_is_its_own_line():
    written: list[str] = []
    lines = LogLines(written.append)
    lines.add(token("Hello there, this is one message."), 0.0)
    assert written == ["assistant says: Hello there, this is one message."]


def test_a_token_is_one_word_of_one_text_part():
    written: list[str] = []
    lines = LogLines(written.append)
    two_parts = TaskMessageEvent(task_id="t-1", message=Message(role="assistant", parts=[
        TextPart(content="one"), TextPart(content="two")]))
    for event in (token("a"), token("two words"), two_parts, token("b"), token("\n")):
        lines.add(event, 0.0)
    lines.flush()
    assert written == ["assistant says: a", "assistant says: two words", "assistant says: onetwo",
                       "assistant says: b"]
