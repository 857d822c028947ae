"""A token-by-token stream reads as sentences in the task log, never a line per token."""

from __future__ import annotations

import re

from airflow_agentvault.protocol.describe import LINE_SECONDS, WIDTH, LogLines
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


def stream(tokens: list[str], seconds_apart: float = 0.0) -> list[str]:
    written: list[str] = []
    lines = LogLines(written.append)
    for index, text in enumerate(tokens):
        lines.add(token(text), index * seconds_apart)
    lines.flush()
    return written


def test_headings_and_list_items_keep_their_own_lines():
    answer = "Intro here.\n\n## Method\nSentences stating the facts.\n1. First item\n2. Second item\n"
    # the reference agent's tokens: each word with the whitespace before it, as an LLM streams them
    tokens = re.findall(r"\s*\S+\s*$|\s*\S+", answer)
    assert "".join(tokens).strip() == answer.strip()
    assert stream(tokens) == [
        "assistant says: Intro here.", "assistant says: ## Method", "assistant says: Sentences stating the facts.",
        "assistant says: 1. First item", "assistant says: 2. Second item"]


def test_a_list_number_never_stands_alone():
    assert stream(["2.", "Second", "item."]) == ["assistant says: 2. Second item."]


def test_word_pieces_join_without_spaces():
    assert stream(["Re", "efs", " bleach", " in", " heat", ".", " They", " recover", "."]) == [
        "assistant says: Reefs bleach in heat.", "assistant says: They recover."]


def test_long_lines_wrap_at_a_word_boundary():
    words = [f"word{i}" for i in range(60)]
    written = stream(words)
    assert len(written) > 1
    assert all(len(line) <= len("assistant says: ") + WIDTH for line in written)
    assert " ".join(line.removeprefix("assistant says: ") for line in written) == " ".join(words)


def test_a_slow_stream_writes_several_words_a_line_not_one():
    words = "A slow local model thinks about every word it writes down here".split()
    written = stream(words, seconds_apart=1.0)  # one token a second
    assert all(len(line.removeprefix("assistant says: ").split()) > 1 for line in written)
    assert " ".join(line.removeprefix("assistant says: ") for line in written) == " ".join(words)
