"""The reference AgentVault agent answers as the raw captures in ``wire/agentvault/`` show.

Uses plain ``requests`` (not the project's client) so these tests check the agent alone. Every wait
is bounded: HTTP timeouts, and polling ``tasks/get`` against a deadline.
"""

from __future__ import annotations

import json
import re
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from agentvault_stack.agent.behaviour import DEFAULT_AUTH_QUESTION
from agentvault_stack.agent.messages import CREDENTIAL_REJECTED
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.describe import LogLines
from airflow_agentvault.protocol.models import DataPart, Message, TaskMessageEvent, TaskState, TextPart

pytestmark = pytest.mark.integration

TIMEOUT = (2.0, 10.0)  # connect, read
TASK_KEYS = ["id", "state", "createdAt", "updatedAt", "messages", "artifacts", "metadata"]
STATUS_KEYS = ["taskId", "state", "timestamp", "message"]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SSE_BLOCK = re.compile(r"event: (task_status|task_message|task_artifact)\ndata: (\{.*\})")
FAILURE_REASON = "reference agent failed on purpose"
TEXT_MESSAGE = {"role": "user", "parts": [{"type": "text", "content": "x"}]}


# -- helpers --------------------------------------------------------------------------------


def rpc_raw(url: str, method: str, params: Any, headers: dict[str, str] | None = None) -> requests.Response:
    body = {"jsonrpc": "2.0", "method": method, "params": params, "id": f"req-{method}"}
    return requests.post(url, json=body, headers=headers, timeout=TIMEOUT)


def rpc(server: ReferenceAgentServer, method: str, params: Any, **kwargs: Any) -> dict[str, Any]:
    response = rpc_raw(server.rpc_url, method, params, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def send(
    server: ReferenceAgentServer,
    text: str = "hello",
    *,
    data: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    task_id: str | None = None,
) -> str:
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}]
    if data is not None:
        parts.append({"type": "data", "content": data})
    message: dict[str, Any] = {"role": "user", "parts": parts}
    if overrides is not None:
        message["metadata"] = {"reference_agent": overrides}
    params: dict[str, Any] = {"message": message}
    if task_id is not None:
        params["id"] = task_id
    reply = rpc(server, "tasks/send", params)
    assert "error" not in reply, reply
    return reply["result"]["id"]


def get_task(server: ReferenceAgentServer, task_id: str) -> dict[str, Any]:
    reply = rpc(server, "tasks/get", {"id": task_id})
    assert "error" not in reply, reply
    return reply["result"]


def wait_for_state(
    server: ReferenceAgentServer, task_id: str, *states: str, timeout: float = 5.0
) -> dict[str, Any]:
    """Poll tasks/get until the task is in one of ``states``; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        reply = rpc(server, "tasks/get", {"id": task_id})
        task = reply.get("result")
        if task is not None and task["state"] in states:
            return task
        if time.monotonic() > deadline:
            pytest.fail(f"task {task_id} not in {states} after {timeout}s: {reply}")
        time.sleep(0.02)


def subscribe(server: ReferenceAgentServer, task_id: str) -> requests.Response:
    body = {"jsonrpc": "2.0", "method": "tasks/sendSubscribe", "params": {"id": task_id}, "id": "req-sub"}
    return requests.post(
        server.rpc_url, json=body, headers={"Accept": "text/event-stream"}, stream=True, timeout=TIMEOUT
    )


def read_events(response: requests.Response) -> list[tuple[str, dict[str, Any]]]:
    """Read the whole stream (until the server closes it) and check its framing strictly."""
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers.get("transfer-encoding") == "chunked"
    raw = b"".join(response.iter_content(chunk_size=None)).decode()
    if not raw:
        return []
    assert raw.endswith("\n\n"), raw
    events = []
    for block in raw[:-2].split("\n\n"):
        match = SSE_BLOCK.fullmatch(block)
        assert match, f"bad SSE block: {block!r}"
        events.append((match.group(1), json.loads(match.group(2))))
    return events


def assistant_says(text: str) -> dict[str, Any]:
    return {"role": "assistant", "parts": [{"type": "text", "content": text}], "metadata": None}


def states_of(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [data["state"] for name, data in events if name == "task_status"]


@pytest.fixture(scope="module")
def agent() -> Iterator[ReferenceAgentServer]:
    with ReferenceAgentServer(AgentBehaviour(work_seconds=0.2)) as server:
        yield server


# -- card and routing -----------------------------------------------------------------------


def test_card_follows_host_header(agent: ReferenceAgentServer) -> None:
    response = requests.get(agent.card_url, timeout=TIMEOUT)
    assert response.status_code == 200
    card = response.json()
    required = ("schemaVersion", "humanReadableId", "agentVersion", "name", "description", "provider")
    for key in (*required, "skills", "tags"):
        assert card[key], key
    assert card["url"] == agent.rpc_url
    assert card["capabilities"]["a2aVersion"] == "1.0"
    assert card["authSchemes"] == [{"scheme": "none"}]

    # Fetched via localhost, the card URL is one the SDK's validator accepts.
    as_localhost = requests.get(agent.card_url, headers={"Host": f"localhost:{agent.port}"}, timeout=TIMEOUT)
    assert as_localhost.json()["url"] == f"http://localhost:{agent.port}/a2a/"


def test_post_without_slash_redirects(agent: ReferenceAgentServer) -> None:
    response = requests.post(
        agent.url + "/a2a",
        json={"jsonrpc": "2.0", "method": "tasks/get", "params": {"id": "nope"}, "id": "req-9"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 307
    assert response.headers["location"] == agent.rpc_url
    assert response.content == b""


def test_parse_error(agent: ReferenceAgentServer) -> None:
    response = requests.post(agent.rpc_url, data=b"not json", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == b'{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}'


def test_unknown_method_and_resubscribe(agent: ReferenceAgentServer) -> None:
    reply = rpc(agent, "tasks/resubscribe", {"id": "x"})
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": "req-tasks/resubscribe",
    }


def test_invalid_request_and_params(agent: ReferenceAgentServer) -> None:
    response = requests.post(agent.rpc_url, json={"method": "tasks/get", "id": 7}, timeout=TIMEOUT)
    assert response.json()["error"]["code"] == -32600
    assert response.json()["id"] == 7
    assert requests.post(agent.rpc_url, json=[1], timeout=TIMEOUT).json()["error"]["code"] == -32600

    reply = rpc(agent, "tasks/get", {})
    assert reply["error"]["code"] == -32602
    message = reply["error"]["message"]
    assert message.startswith("Invalid parameters: 1 validation error for TaskGetParams\nid\n")

    no_parts = rpc(agent, "tasks/send", {"message": {"role": "user", "parts": []}})
    assert no_parts["error"]["code"] == -32602

    bad_override = rpc(
        agent,
        "tasks/send",
        {"message": {**TEXT_MESSAGE, "metadata": {"reference_agent": {"nope": 1}}}},
    )
    assert bad_override["error"]["code"] == -32602
    assert "nope" in bad_override["error"]["message"]


def test_unknown_task(agent: ReferenceAgentServer) -> None:
    expected = {"code": -32001, "message": "Task not found: nope"}
    assert rpc(agent, "tasks/get", {"id": "nope"})["error"] == expected
    assert rpc(agent, "tasks/cancel", {"id": "nope"})["error"] == expected
    response = subscribe(agent, "nope")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == expected


# -- send / get / stream --------------------------------------------------------------------


def test_send_get_round_trip(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, "hello", data={"topic": "x"})
    assert re.fullmatch(r"ref-[0-9a-f]{8}", task_id)

    first = get_task(agent, task_id)
    assert list(first) == TASK_KEYS
    assert first["state"] in {"SUBMITTED", "WORKING"}
    assert ISO_Z.match(first["createdAt"]) and ISO_Z.match(first["updatedAt"])
    # Stored as the SDK stores it: data parts get their mediaType, messages their metadata (capture 02).
    assert first["messages"][0] == {
        "role": "user",
        "parts": [
            {"type": "text", "content": "hello"},
            {"type": "data", "content": {"topic": "x"}, "mediaType": "application/json"},
        ],
        "metadata": None,
    }

    final = wait_for_state(agent, task_id, "COMPLETED")
    assert list(final) == TASK_KEYS
    assert final["metadata"] == {"usage": {"input_tokens": 1, "output_tokens": 3}}  # words in, words out
    assert final["messages"][1] == {
        "role": "assistant",
        "parts": [{"type": "text", "content": "Reference answer: hello"}],
        "metadata": None,
    }
    assert final["artifacts"] == [
        {
            "id": f"{task_id}-result",
            "type": "result",
            "content": {
                "answer": "Reference answer: hello",
                "echo": {"text": ["hello"], "data": [{"topic": "x"}]},
                "index": 1,
            },
            "url": None,
            "mediaType": "application/json",
            "metadata": None,
        }
    ]
    assert list(final["artifacts"][0]) == ["id", "type", "content", "url", "mediaType", "metadata"]


def test_artifact_count(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, overrides={"artifact_count": 3, "work_seconds": 0.05})
    final = wait_for_state(agent, task_id, "COMPLETED")
    ids = [artifact["id"] for artifact in final["artifacts"]]
    assert ids == [f"{task_id}-result", f"{task_id}-result-2", f"{task_id}-result-3"]


def test_sse_stream_shape_and_order(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, "stream me", overrides={"work_seconds": 1.0})
    events = read_events(subscribe(agent, task_id))

    assert [name for name, _ in events] == ["task_status", "task_message", "task_artifact", "task_status"]
    assert states_of(events) == ["WORKING", "COMPLETED"]
    for name, data in events:
        assert data["taskId"] == task_id
        assert ISO_Z.match(data["timestamp"])
        if name == "task_status":
            assert list(data) == STATUS_KEYS
            assert data["message"] is None
    assert list(events[1][1]) == ["taskId", "message", "timestamp"]
    assert events[1][1]["message"]["parts"][0]["content"] == "Reference answer: stream me"
    assert list(events[2][1]) == ["taskId", "artifact", "timestamp"]
    assert events[2][1]["artifact"]["id"] == f"{task_id}-result"
    # The stream ended because the server closed it after the terminal status.
    assert get_task(agent, task_id)["state"] == "COMPLETED"


def test_late_subscriber_gets_no_replay(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, overrides={"work_seconds": 1.0})
    wait_for_state(agent, task_id, "WORKING")
    events = read_events(subscribe(agent, task_id))
    assert "WORKING" not in states_of(events)
    assert states_of(events)[-1] == "COMPLETED"


def test_subscriber_to_finished_task_gets_terminal_status_once(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, overrides={"work_seconds": 0.05})
    final = wait_for_state(agent, task_id, "COMPLETED")
    events = read_events(subscribe(agent, task_id))
    assert events == [
        (
            "task_status",
            {"taskId": task_id, "state": "COMPLETED", "timestamp": final["updatedAt"], "message": None},
        )
    ]


# -- behaviour switches ---------------------------------------------------------------------


def test_delayed_visibility(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, overrides={"visible_after_seconds": 0.6, "work_seconds": 0.1})
    not_found = {"code": -32001, "message": f"Task not found: {task_id}"}
    assert rpc(agent, "tasks/get", {"id": task_id})["error"] == not_found
    assert rpc(agent, "tasks/cancel", {"id": task_id})["error"] == not_found
    response = subscribe(agent, task_id)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == not_found
    # The task kept running meanwhile: once visible it is already done.
    assert wait_for_state(agent, task_id, "COMPLETED")["artifacts"]


def test_tokens_stream_one_word_each(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, "alpha beta", overrides={"tokens": 5, "tokens_per_second": 50, "work_seconds": 1.0})
    events = read_events(subscribe(agent, task_id))
    words = [data["message"]["parts"][0]["content"] for name, data in events if name == "task_message"]
    assert words == ["Reference", " answer:", " alpha", " beta", " Reference"]
    assert states_of(events)[-1] == "COMPLETED"
    assert len(get_task(agent, task_id)["messages"]) == 1 + 5


def test_tokens_per_second_alone_streams_the_whole_answer(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, "one two three", overrides={"tokens_per_second": 40, "work_seconds": 0.8})
    events = read_events(subscribe(agent, task_id))
    words = [data["message"]["parts"][0]["content"] for name, data in events if name == "task_message"]
    assert "".join(words) == "Reference answer: one two three"


MARKDOWN = "# Findings\n\n## Method\nSentences stating figures.  Two spaces.\n\n1. first item\n2. second item\n"


def test_streamed_tokens_keep_the_answers_whitespace_as_an_llm_streams_them(agent: ReferenceAgentServer) -> None:
    """Each token is a word with the whitespace before it: newlines, headings and list numbers survive."""
    task_id = send(agent, MARKDOWN, overrides={"tokens_per_second": 400, "work_seconds": 0.1})
    events = read_events(subscribe(agent, task_id))
    tokens = [data["message"]["parts"][0]["content"] for name, data in events if name == "task_message"]
    answer = f"Reference answer: {MARKDOWN}"
    assert "".join(tokens) == answer
    assert "\n\n##" in tokens and "\n2." in tokens and all(len(t.split()) == 1 for t in tokens)
    # The provider reassembles the exact answer from the token messages (its trailing newline aside).
    task = AgentClient(agent.rpc_url).get(task_id)
    assert task.answer_text() == answer.strip()
    # ... and its task log shows them as lines a person reads: a heading alone, a list item whole.
    lines: list[str] = []
    log_lines = LogLines(lines.append)
    for token in tokens:
        log_lines.add(TaskMessageEvent(task_id=task_id, message=Message(role="assistant", parts=[TextPart(
            content=token)])), now=0.0)
    log_lines.flush()
    assert lines == ["assistant says: Reference answer:", "assistant says: # Findings", "assistant says: ## Method",
                     "assistant says: Sentences stating figures.", "assistant says: Two spaces.",
                     "assistant says: 1. first item", "assistant says: 2. second item"]


def instant(stamp: str) -> datetime:
    """An ISO 8601 timestamp; Python 3.10's fromisoformat does not read a trailing Z."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_think_seconds_delay_the_first_token(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, "x", overrides={"tokens_per_second": 100, "work_seconds": 0, "think_seconds": 0.5})
    events = read_events(subscribe(agent, task_id))
    first_token = next(data["timestamp"] for name, data in events if name == "task_message")
    created = get_task(agent, task_id)["createdAt"]
    assert instant(first_token) - instant(created) >= timedelta(seconds=0.5)
    assert states_of(events)[-1] == "COMPLETED"


def test_failed_task_like_captures_14_and_15(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, "fail please", overrides={"fail": True, "work_seconds": 1.0})
    events = read_events(subscribe(agent, task_id))
    assert [name for name, _ in events] == ["task_status", "task_message", "task_status"]
    assert states_of(events) == ["WORKING", "FAILED"]
    assert events[-1][1]["message"] == FAILURE_REASON

    task = get_task(agent, task_id)
    assert task["state"] == "FAILED"
    assert task["artifacts"] == []
    assert task["metadata"] == {"error": FAILURE_REASON}
    assert task["messages"][-1] == {
        "role": "assistant",
        "parts": [{"type": "text", "content": FAILURE_REASON}],
        "metadata": None,
    }


def test_input_required_then_follow_up_resumes(agent: ReferenceAgentServer) -> None:
    question = "Which time range should the research cover?"
    task_id = send(agent, "research tides", overrides={"input_required": True, "work_seconds": 0.8})
    events = read_events(subscribe(agent, task_id))
    assert [name for name, _ in events] == ["task_status", "task_message", "task_status"]
    assert states_of(events) == ["WORKING", "INPUT_REQUIRED"]
    assert events[1][1]["message"]["parts"][0]["content"] == question
    assert events[-1][1]["message"] == question

    waiting = get_task(agent, task_id)
    assert waiting["state"] == "INPUT_REQUIRED"
    assert waiting["messages"][-1]["role"] == "assistant"

    assert send(agent, "last week", task_id=task_id) == task_id
    assert get_task(agent, task_id)["state"] == "WORKING"  # resumed at once, not after a delay
    final = wait_for_state(agent, task_id, "COMPLETED")
    assert final["messages"][2]["parts"][0]["content"] == "last week"
    assert final["artifacts"][0]["content"]["answer"] == "Reference answer: research tides last week"


def test_follow_up_to_unknown_task(agent: ReferenceAgentServer) -> None:
    reply = rpc(agent, "tasks/send", {"id": "nope", "message": TEXT_MESSAGE})
    assert reply["error"] == {"code": -32001, "message": "Task not found: nope"}


def test_stream_dropped_after_n_events(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, overrides={"drop_stream_after_events": 2, "work_seconds": 0.6})
    events = read_events(subscribe(agent, task_id))
    assert len(events) == 2
    assert "COMPLETED" not in states_of(events)
    wait_for_state(agent, task_id, "COMPLETED")  # the task went on without the stream


def test_subscribe_not_found_bug(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, overrides={"subscribe_not_found": True, "work_seconds": 0.1})
    response = subscribe(agent, task_id)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == {"code": -32001, "message": f"Task not found: {task_id}"}
    wait_for_state(agent, task_id, "COMPLETED")  # tasks/get works


# -- asking a person ------------------------------------------------------------------------


def wait_until(server: ReferenceAgentServer, task_id: str, ready: Any, what: str, timeout: float = 5.0) -> dict:
    """Poll tasks/get until ``ready(task)``; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        task = get_task(server, task_id)
        if ready(task):
            return task
        if time.monotonic() > deadline:
            pytest.fail(f"task {task_id} not {what} after {timeout}s: {task}")
        time.sleep(0.02)


def asking(text: str) -> Any:
    """A task waiting in INPUT_REQUIRED whose last message is the question ``text``."""
    return lambda task: task["state"] == "INPUT_REQUIRED" and task["messages"][-1]["parts"][0]["content"] == text


def answer(server: ReferenceAgentServer, task_id: str, text: str) -> None:
    send(server, text, data={"answer": text}, task_id=task_id)


def test_questions_one_per_round_with_options_then_the_answers_are_listed(agent: ReferenceAgentServer) -> None:
    options = ["a table", "a chart"]
    questions = ["Which region?", {"text": "Which format?", "options": options}]
    task_id = send(agent, "sales report", overrides={"questions": questions, "work_seconds": 0.2})
    events = read_events(subscribe(agent, task_id))
    assert states_of(events) == ["WORKING", "INPUT_REQUIRED"]
    assert events[-1][1]["message"] == "Which region?"  # no options: the status message stays plain text
    first = wait_until(agent, task_id, asking("Which region?"), "asking the region")
    assert first["messages"][-1] == assistant_says("Which region?")

    answer(agent, task_id, "north")
    second = wait_until(agent, task_id, asking("Which format?"), "asking the format")
    data_part = {"type": "data", "content": {"options": options}, "mediaType": "application/json"}
    assert second["messages"][-1] == {**assistant_says("Which format?"),
                                      "parts": [{"type": "text", "content": "Which format?"}, data_part]}
    status = read_events(subscribe(agent, task_id))  # a waiting task: its last status once
    assert [data["state"] for _, data in status] == ["INPUT_REQUIRED"]
    assert status[0][1]["message"]["parts"] == second["messages"][-1]["parts"]  # options in the status too

    answer(agent, task_id, "a chart")
    final = wait_for_state(agent, task_id, "COMPLETED", "FAILED")
    assert final["state"] == "COMPLETED"
    expected = "Reference answer: sales report north a chart Answers: north; a chart"
    assert final["messages"][-1] == assistant_says(expected)
    assert final["artifacts"][0]["content"]["answer"] == expected
    assert [m["role"] for m in final["messages"]] == ["user", "assistant", "user", "assistant", "user", "assistant"]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_as_many_rounds_as_questions(agent: ReferenceAgentServer, count: int) -> None:
    questions = [f"Question {n}?" for n in range(1, count + 1)]
    task_id = send(agent, "go", overrides={"questions": questions, "work_seconds": 0.04})
    for n, text in enumerate(questions, 1):
        wait_until(agent, task_id, asking(text), f"asking question {n}")
        answer(agent, task_id, f"answer {n}")
    final = wait_for_state(agent, task_id, "COMPLETED", "FAILED")
    said = final["messages"][-1]["parts"][0]["content"]
    asked = [m["parts"][0]["content"] for m in final["messages"] if m["role"] == "assistant"][:-1]
    assert asked == questions
    if count:
        assert said.endswith("Answers: " + "; ".join(f"answer {n}" for n in range(1, count + 1)))
    else:
        assert said == "Reference answer: go"


def test_our_client_reads_the_question_and_its_answer_resumes_the_task(agent: ReferenceAgentServer) -> None:
    client = AgentClient(agent.rpc_url, connect_timeout=2, read_timeout=10)
    question = {"text": "Which source first?", "options": ["archive", "survey"]}
    first = Message(role="user", parts=[TextPart(content="compare")],
                    metadata={"reference_agent": {"questions": [question], "work_seconds": 0.04}})
    task_id = client.send(first)
    deadline = time.monotonic() + 5
    while (task := client.get(task_id)).state is not TaskState.INPUT_REQUIRED:
        assert time.monotonic() < deadline and not task.state.is_terminal, task
        time.sleep(0.02)
    asked = task.messages[-1]
    assert asked.role == "assistant" and asked.text == "Which source first?"
    assert [p.content for p in asked.parts if isinstance(p, DataPart)] == [{"options": ["archive", "survey"]}]

    reply = Message(role="user", parts=[TextPart(content="survey"), DataPart(content={"answer": "survey"})])
    assert client.send(reply, task_id=task_id) == task_id
    deadline = time.monotonic() + 5
    while not (task := client.get(task_id)).state.is_terminal:
        assert time.monotonic() < deadline, task
        time.sleep(0.02)
    assert task.state is TaskState.COMPLETED
    assert task.messages[-1].text == "Reference answer: compare survey Answers: survey"


def test_credential_resumes_the_task_and_is_never_repeated(agent: ReferenceAgentServer) -> None:
    secret = "s3cret-0a9b"
    task_id = send(agent, "fetch the private data", overrides={"require_credential": secret, "work_seconds": 0.2})
    stream = subscribe(agent, task_id)
    asked = wait_for_state(agent, task_id, "AUTH_REQUIRED", "COMPLETED", "FAILED")
    assert asked["state"] == "AUTH_REQUIRED"
    assert asked["messages"][-1] == assistant_says(DEFAULT_AUTH_QUESTION)

    send(agent, "credential attached", data={"credential": secret}, task_id=task_id)
    final = wait_for_state(agent, task_id, "COMPLETED", "FAILED")
    assert final["state"] == "COMPLETED", final["metadata"]
    assert final["messages"][-1] == assistant_says("Reference answer: fetch the private data credential attached")
    assert final["messages"][2]["parts"][1]["content"] == {"credential": "[redacted]"}
    events = read_events(stream)
    assert states_of(events) == ["WORKING", "AUTH_REQUIRED"]
    for seen in (json.dumps(final), json.dumps(events), json.dumps(get_task(agent, task_id))):
        assert secret not in seen


def test_wrong_credential_fails_the_task_without_repeating_either_value(agent: ReferenceAgentServer) -> None:
    secret, wrong = "right-7c1d", "wrong-52e8"
    task_id = send(agent, "fetch", overrides={"require_credential": secret, "work_seconds": 0.04})
    wait_for_state(agent, task_id, "AUTH_REQUIRED")
    send(agent, "credential attached", data={"credential": wrong}, task_id=task_id)
    final = wait_for_state(agent, task_id, "FAILED", "COMPLETED")
    assert final["state"] == "FAILED"
    assert final["metadata"] == {"error": CREDENTIAL_REJECTED}
    assert final["messages"][-1] == assistant_says(CREDENTIAL_REJECTED)
    status = read_events(subscribe(agent, task_id))
    assert status[0][1]["message"] == CREDENTIAL_REJECTED
    for seen in (json.dumps(final), json.dumps(status)):
        assert secret not in seen and wrong not in seen


def test_follow_up_without_a_credential_fails_too(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, "fetch", overrides={"require_credential": "x-1", "work_seconds": 0.04})
    wait_for_state(agent, task_id, "AUTH_REQUIRED")
    answer(agent, task_id, "I do not have it")
    assert wait_for_state(agent, task_id, "FAILED", "COMPLETED")["metadata"] == {"error": CREDENTIAL_REJECTED}


def test_credential_then_questions(agent: ReferenceAgentServer) -> None:
    overrides = {"require_credential": "k-9", "questions": ["Proceed?"], "work_seconds": 0.04}
    task_id = send(agent, "both", overrides=overrides)
    wait_for_state(agent, task_id, "AUTH_REQUIRED")
    send(agent, "credential attached", data={"credential": "k-9"}, task_id=task_id)
    wait_until(agent, task_id, asking("Proceed?"), "asking after the credential")
    answer(agent, task_id, "yes")
    final = wait_for_state(agent, task_id, "COMPLETED", "FAILED")
    assert final["messages"][-1]["parts"][0]["content"].endswith("Answers: yes")


# -- cancel ---------------------------------------------------------------------------------


def test_cancel_running_then_again(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, "long job", overrides={"work_seconds": 30})
    stream = subscribe(agent, task_id)
    wait_for_state(agent, task_id, "SUBMITTED", "WORKING")
    assert rpc(agent, "tasks/cancel", {"id": task_id})["result"] == {"success": True, "message": None}

    task = get_task(agent, task_id)
    assert task["state"] == "CANCELED"
    assert task["artifacts"] == [] and task["metadata"] is None
    assert [m["role"] for m in task["messages"]] == ["user"]
    assert states_of(read_events(stream))[-1] == "CANCELED"  # an open stream ends with it

    assert rpc(agent, "tasks/cancel", {"id": task_id})["result"] == {"success": False, "message": None}


def test_cancel_finished(agent: ReferenceAgentServer) -> None:
    task_id = send(agent, overrides={"work_seconds": 0.05})
    wait_for_state(agent, task_id, "COMPLETED")
    reply = rpc(agent, "tasks/cancel", {"id": task_id})
    assert reply == {
        "jsonrpc": "2.0",
        "result": {"success": False, "message": None},
        "id": "req-tasks/cancel",
    }
    assert get_task(agent, task_id)["state"] == "COMPLETED"


# -- authentication, control ----------------------------------------------------------------


def test_api_key() -> None:
    with ReferenceAgentServer(AgentBehaviour(api_key="s3cret", work_seconds=0.05)) as server:
        card = requests.get(server.card_url, timeout=TIMEOUT).json()
        assert [s["scheme"] for s in card["authSchemes"]] == ["apiKey"]

        for headers in (None, {"X-Api-Key": "wrong"}):
            denied = rpc_raw(server.rpc_url, "tasks/get", {"id": "nope"}, headers=headers)
            assert denied.status_code == 401
            assert denied.headers["content-type"] == "application/json"
            assert denied.content == b'{"detail":"bad api key"}'

        allowed = rpc_raw(server.rpc_url, "tasks/get", {"id": "nope"}, headers={"X-Api-Key": "s3cret"})
        assert allowed.status_code == 200
        assert allowed.json()["error"]["code"] == -32001
        assert requests.get(server.url + "/_control/stats", timeout=TIMEOUT).json()["unauthorized"] == 2


def test_static_bearer_token() -> None:
    with ReferenceAgentServer(AgentBehaviour(bearer_token="tok")) as server:
        assert rpc_raw(server.rpc_url, "tasks/get", {"id": "x"}).status_code == 401
        ok = rpc_raw(server.rpc_url, "tasks/get", {"id": "x"}, headers={"Authorization": "Bearer tok"})
        assert ok.status_code == 200


def test_oauth_client_credentials() -> None:
    behaviour = AgentBehaviour(
        oauth_client_id="cid", oauth_client_secret="csecret", oauth_token_ttl_seconds=120
    )
    with ReferenceAgentServer(behaviour) as server:
        card = requests.get(server.card_url, timeout=TIMEOUT).json()
        assert card["authSchemes"][0]["scheme"] == "oauth2"
        token_url = card["authSchemes"][0]["tokenUrl"]
        assert token_url == server.url + "/oauth/token"

        assert rpc_raw(server.rpc_url, "tasks/get", {"id": "x"}).status_code == 401
        bad = requests.post(
            token_url,
            data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "nope"},
            timeout=TIMEOUT,
        )
        assert bad.status_code == 401 and bad.json() == {"error": "invalid_client"}

        issued = requests.post(
            token_url,
            data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"},
            timeout=TIMEOUT,
        ).json()
        assert issued["token_type"] == "bearer" and issued["expires_in"] == 120
        bearer = {"Authorization": f"Bearer {issued['access_token']}"}
        for _ in range(2):
            ok = rpc_raw(server.rpc_url, "tasks/get", {"id": "x"}, headers=bearer)
            assert ok.status_code == 200 and ok.json()["error"]["code"] == -32001

        stats = requests.get(server.url + "/_control/stats", timeout=TIMEOUT).json()
        assert stats["tokens_issued"] == 1
        assert stats["token_requests"] == 2
        assert stats["requests"]["tasks/get"] == 2


def test_control_behaviour_replaces_default() -> None:
    with ReferenceAgentServer() as server:
        control = server.url + "/_control/behaviour"
        assert requests.post(control, json={"nope": True}, timeout=TIMEOUT).status_code == 422
        replaced = requests.post(control, json={"fail": True, "work_seconds": 0.05}, timeout=TIMEOUT)
        assert replaced.status_code == 200 and replaced.json()["fail"] is True
        assert requests.get(control, timeout=TIMEOUT).json()["work_seconds"] == 0.05

        task_id = send(server)
        assert wait_for_state(server, task_id, "FAILED", "COMPLETED")["state"] == "FAILED"
        stats = requests.get(server.url + "/_control/stats", timeout=TIMEOUT).json()
        assert stats["requests"]["tasks/send"] == 1
        assert stats["task_states"] == {"FAILED": 1}


# -- server life cycle ----------------------------------------------------------------------


def test_stop_is_fast_with_an_open_stream() -> None:
    server = ReferenceAgentServer().start()
    try:
        task_id = send(server, overrides={"work_seconds": 60})
        stream = subscribe(server, task_id)
        assert stream.status_code == 200
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 3.0
    assert not server.running
    assert read_events(stream) == []


def test_cli_subprocess_prints_url_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "agentvault_stack.agent", "--port", "0", "--name", "CLI agent", "--fail"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=30), "no AGENT_URL line within 30s"
        line = process.stdout.readline().strip()
        assert line.startswith("AGENT_URL=http://127.0.0.1:"), line
        url = line.removeprefix("AGENT_URL=")

        card = requests.get(url + "/agent-card.json", timeout=TIMEOUT).json()
        assert card["name"] == "CLI agent"
        assert requests.get(url + "/_control/behaviour", timeout=TIMEOUT).json()["fail"] is True
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""


def test_connections_send_without_nagle_delay(agent: ReferenceAgentServer) -> None:
    """Accepted sockets have TCP_NODELAY: a keep-alive response written in two parts would otherwise
    wait for the client's delayed ACK (~40 ms per request on Linux)."""
    with requests.Session() as session:
        for _ in range(2):  # the second request reuses the connection
            assert session.get(f"{agent.url}/agent-card.json", timeout=TIMEOUT).status_code == 200
        connections = list(agent._server.server_state.connections)
        sockets = [c.transport.get_extra_info("socket") for c in connections]
        assert sockets, "the session's connection is still open"
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
