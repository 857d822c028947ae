"""A result's ``text`` is what a person would call the agent's answer, and a token stream stays small."""

from __future__ import annotations

from airflow_agentvault.protocol.models import Message, Task, TaskState, TextPart
from airflow_agentvault.protocol.result import build_result


def says(role: str, text: str) -> Message:
    return Message(role=role, parts=[TextPart(content=text)])


def task_with(*messages: Message) -> Task:
    return Task(id="t-1", state=TaskState.COMPLETED, messages=list(messages), artifacts=[])


def result_of(*messages: Message) -> dict:
    return build_result(task_with(*messages), agent_url="http://agent.test/a2a/")


def test_one_answer_is_the_text():
    assert result_of(says("user", "hi"), says("assistant", "Hello there."))["text"] == "Hello there."


def test_progress_then_answer_gives_the_answer_and_keeps_both_messages():
    result = result_of(says("user", "hi"), says("assistant", "Searching the corpus..."), says("assistant", "Found 3."))
    assert result["text"] == "Found 3."
    assert [m["parts"][0]["content"] for m in result["messages"]] == ["Searching the corpus...", "Found 3."]


def test_a_token_stream_is_one_answer_and_one_message():
    words = "Coral reefs bleach when the water stays too warm.".split()
    result = result_of(says("user", "topic"), *(says("assistant", word) for word in words))
    assert result["text"] == "Coral reefs bleach when the water stays too warm."
    assert len(result["messages"]) == 1 and result["messages"][0]["metadata"] == {"joined_messages": len(words)}


def test_tokens_that_carry_their_own_spacing_are_joined_as_sent():
    tokens = ["Heat", " waves", " stress", " corals", "."]
    assert result_of(says("user", "q"), *(says("assistant", t) for t in tokens))["text"] == "Heat waves stress corals."


def test_only_the_reply_to_the_last_user_message_counts():
    result = result_of(says("user", "first"), says("assistant", "old answer"), says("user", "second"),
                       says("assistant", "new"), says("assistant", "answer"))
    assert result["text"] == "new answer"
    assert [m["parts"][0]["content"] for m in result["messages"]] == ["old answer", "new answer"]


def test_no_agent_message_gives_empty_text():
    assert result_of(says("user", "hi"))["text"] == ""
