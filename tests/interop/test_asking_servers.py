"""The a2a-sdk 1.3.0 test agent asks a person, in each binding it serves: JSON-RPC 1.0, 0.3 and REST.

``ask=N`` asks N questions (options ``yes``/``no`` as a data part) in N rounds; ``auth_required``
stops in auth-required until a follow-up carries the credential ``letmein``. The tests speak each
binding's wire form directly with httpx, so they check the agent, not our client; one more test
runs two rounds through our own :class:`AgentClient`. Waits poll ``get`` against a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects import codec_for
from airflow_agentvault.protocol.models import DataPart, Message, TaskState, TextPart

from interop.a2a_v1_agent import AUTH_PROMPT, CREDENTIAL, CREDENTIAL_REJECTED, OPTIONS, question

pytestmark = pytest.mark.integration

WAIT = 15.0
POLL = 0.05
ROWS = ["a2a-1.3.0-jsonrpc-1.0", "a2a-1.3.0-jsonrpc-0.3", "a2a-1.3.0-rest"]
V10_STATES = {"TASK_STATE_" + s: s for s in ("INPUT_REQUIRED", "AUTH_REQUIRED", "COMPLETED", "FAILED", "WORKING",
                                             "SUBMITTED", "CANCELED", "REJECTED")}
V03_STATES = {"input-required": "INPUT_REQUIRED", "auth-required": "AUTH_REQUIRED", "completed": "COMPLETED",
              "failed": "FAILED", "working": "WORKING", "submitted": "SUBMITTED", "canceled": "CANCELED",
              "rejected": "REJECTED"}


@dataclass
class Seen:
    """A task as ``get`` returned it, in one shape for every binding: parts are ("text"|"data", value)."""

    id: str
    context_id: str
    state: str
    status_parts: list[tuple[str, Any]]
    agent_parts: list[tuple[str, Any]]  # every part of every agent message in the history
    artifact_texts: list[str]
    raw: dict[str, Any]

    @property
    def status_text(self) -> str:
        return "".join(v for k, v in self.status_parts if k == "text")

    @property
    def status_data(self) -> list[Any]:
        return [v for k, v in self.status_parts if k == "data"]


def _parts(parts: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for part in parts or []:
        if "text" in part:
            out.append(("text", part["text"]))
        elif "data" in part:
            out.append(("data", part["data"]))
    return out


class Binding:
    """One wire form of the agent: how to send a message and read a task."""

    def __init__(self, row: str, rpc_url: str) -> None:
        self.row = row
        self.url = rpc_url
        self.http = httpx.Client(timeout=10)
        self.v03 = row.endswith("0.3")

    def close(self) -> None:
        self.http.close()

    def message(self, text: str, data: dict[str, Any] | None, task_id: str | None, context_id: str | None) -> dict:
        if self.v03:
            parts: list[dict[str, Any]] = [{"kind": "text", "text": text}]
            parts += [{"kind": "data", "data": data}] if data is not None else []
            wire: dict[str, Any] = {"kind": "message", "messageId": uuid.uuid4().hex, "role": "user", "parts": parts}
        else:
            parts = [{"text": text}] + ([{"data": data}] if data is not None else [])
            wire = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": parts}
        if task_id:
            wire.update(taskId=task_id, contextId=context_id)
        return wire

    def _rpc(self, method: str, params: dict[str, Any]) -> Any:
        headers = {} if self.v03 else {"A2A-Version": "1.0"}
        body = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}
        reply = self.http.post(self.url, json=body, headers=headers)
        assert reply.status_code == 200, reply.text
        assert "error" not in reply.json(), reply.json()
        return reply.json()["result"]

    def send(self, text: str, data: dict[str, Any] | None = None, task_id: str | None = None,
             context_id: str | None = None) -> Seen:
        message = self.message(text, data, task_id, context_id)
        if self.v03:
            task = self._rpc("message/send", {"message": message, "configuration": {"blocking": False}})
        elif self.row.endswith("rest"):
            reply = self.http.post(self.url.rstrip("/") + "/message:send", headers={"A2A-Version": "1.0"},
                                   json={"message": message, "configuration": {"returnImmediately": True}})
            assert reply.status_code == 200, reply.text
            task = reply.json()["task"]
        else:
            task = self._rpc("SendMessage", {"message": message, "configuration": {"returnImmediately": True}})["task"]
        return self.seen(task)

    def get(self, task_id: str) -> Seen:
        if self.v03:
            return self.seen(self._rpc("tasks/get", {"id": task_id}))
        if self.row.endswith("rest"):
            reply = self.http.get(f"{self.url.rstrip('/')}/tasks/{task_id}", headers={"A2A-Version": "1.0"})
            assert reply.status_code == 200, reply.text
            return self.seen(reply.json())
        return self.seen(self._rpc("GetTask", {"id": task_id}))

    def seen(self, task: dict[str, Any]) -> Seen:
        status = task.get("status") or {}
        states = V03_STATES if self.v03 else V10_STATES
        agent_role = "agent" if self.v03 else "ROLE_AGENT"
        agent_parts = [p for m in task.get("history") or [] if m.get("role") == agent_role for p in _parts(m["parts"])]
        texts = [v for a in task.get("artifacts") or [] for k, v in _parts(a.get("parts")) if k == "text"]
        return Seen(task["id"], task.get("contextId", ""), states.get(status.get("state"), str(status.get("state"))),
                    _parts((status.get("message") or {}).get("parts")), agent_parts, texts, task)

    def wait(self, task_id: str, ready: Callable[[Seen], bool], what: str) -> Seen:
        deadline = time.monotonic() + WAIT
        while True:
            seen = self.get(task_id)
            if ready(seen):
                return seen
            if time.monotonic() > deadline:
                pytest.fail(f"{self.row}: task {task_id} not {what} after {WAIT}s: {seen.raw}")
            time.sleep(POLL)

    def answer(self, seen: Seen, text: str) -> None:
        self.send(text, {"answer": text}, seen.id, seen.context_id)

    def credential(self, seen: Seen, value: str) -> None:
        self.send("credential attached", {"credential": value}, seen.id, seen.context_id)


@pytest.fixture(params=ROWS)
def binding(request, interop_server):
    server = interop_server(request.param)
    made = Binding(request.param, server.rpc_url)
    yield made
    made.close()


def asking(number: int, total: int) -> Callable[[Seen], bool]:
    return lambda seen: seen.state == "INPUT_REQUIRED" and seen.status_text == question(number, total)


def test_two_questions_with_options_then_the_answers_are_used(binding: Binding) -> None:
    started = binding.send("plan the trip ask=2 sleep=0.1")
    first = binding.wait(started.id, asking(1, 2), "asking question 1")
    assert first.status_data == [{"options": OPTIONS}]

    binding.answer(first, "yes")
    second = binding.wait(started.id, asking(2, 2), "asking question 2")
    assert second.status_data == [{"options": OPTIONS}]
    assert ("text", question(1, 2)) in second.agent_parts  # the first question stays in the history
    assert ("data", {"options": OPTIONS}) in second.agent_parts

    binding.answer(second, "no")
    done = binding.wait(started.id, lambda s: s.state in ("COMPLETED", "FAILED"), "finished")
    assert done.state == "COMPLETED", done.raw
    assert done.status_text == "answers: yes; no"
    assert done.artifact_texts == ["answers: yes; no"]


def test_free_text_answer_without_data_is_used(binding: Binding) -> None:
    started = binding.send("one more ask=1 sleep=0.1")
    asked = binding.wait(started.id, asking(1, 1), "asking")
    binding.send("only on weekdays", None, asked.id, asked.context_id)
    done = binding.wait(started.id, lambda s: s.state == "COMPLETED", "completed")
    assert done.artifact_texts == ["answers: only on weekdays"]


def test_auth_required_resumes_with_the_right_credential(binding: Binding) -> None:
    started = binding.send("fetch it auth_required sleep=0.1")
    asked = binding.wait(started.id, lambda s: s.state == "AUTH_REQUIRED", "auth-required")
    assert asked.status_text == AUTH_PROMPT

    binding.credential(asked, CREDENTIAL)
    done = binding.wait(started.id, lambda s: s.state in ("COMPLETED", "FAILED"), "finished")
    assert done.state == "COMPLETED", done.raw
    assert done.artifact_texts == ["chunk-1 "]
    said = repr(done.agent_parts) + repr(done.artifact_texts) + repr(done.status_parts)
    assert CREDENTIAL not in said


def test_auth_then_a_question(binding: Binding) -> None:
    started = binding.send("fetch it auth_required ask=1 sleep=0.1")
    asked = binding.wait(started.id, lambda s: s.state == "AUTH_REQUIRED", "auth-required")
    binding.credential(asked, CREDENTIAL)
    question_1 = binding.wait(started.id, asking(1, 1), "asking after the credential")
    binding.answer(question_1, "yes")
    done = binding.wait(started.id, lambda s: s.state == "COMPLETED", "completed")
    assert done.artifact_texts == ["answers: yes"]


def test_wrong_credential_fails_without_repeating_it(binding: Binding) -> None:
    wrong = "not-the-password-7f3a"
    started = binding.send("fetch it auth_required sleep=0.1")
    asked = binding.wait(started.id, lambda s: s.state == "AUTH_REQUIRED", "auth-required")
    binding.credential(asked, wrong)
    done = binding.wait(started.id, lambda s: s.state in ("COMPLETED", "FAILED"), "finished")
    assert done.state == "FAILED"
    assert done.status_text == CREDENTIAL_REJECTED
    said = repr(done.agent_parts) + repr(done.artifact_texts) + repr(done.status_parts)
    assert wrong not in said and CREDENTIAL not in said


@pytest.mark.parametrize("row", ROWS)
def test_two_rounds_through_our_client(row: str, interop_server) -> None:
    """Our client sees each question with its options in the task's messages, and follow-ups reach the task."""
    server = interop_server(row)
    client = AgentClient(server.rpc_url, codec=codec_for(server.dialect), connect_timeout=2, read_timeout=10)
    task_id = client.send(Message(role="user", parts=[TextPart(content="decide ask=2 sleep=0.1")]))
    for number, answer in ((1, "no"), (2, "yes")):
        deadline = time.monotonic() + WAIT
        while True:
            task = client.get(task_id)
            asking_now = next((m for m in reversed(task.messages) if m.role != "user"), None)
            if task.state is TaskState.INPUT_REQUIRED and asking_now and asking_now.text == question(number, 2):
                break
            assert time.monotonic() < deadline, f"{row}: no question {number} after {WAIT}s: {task}"
            time.sleep(POLL)
        assert [p.content for p in asking_now.parts if isinstance(p, DataPart)] == [{"options": OPTIONS}]
        reply = Message(role="user", parts=[TextPart(content=answer), DataPart(content={"answer": answer})])
        assert client.send(reply, task_id=task_id, context_id=task.context_id) == task_id
    deadline = time.monotonic() + WAIT
    while (task := client.get(task_id)).state is not TaskState.COMPLETED:
        assert time.monotonic() < deadline and not task.state.is_terminal, f"{row}: {task}"
        time.sleep(POLL)
    assert task.artifacts[0].content == "answers: no; yes"
