"""The real agentvault-server-sdk 0.1.1 agent answers like the project's reference wire captures of
AgentVault (plain ``requests``, no project code involved)."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.integration

STATES = {"SUBMITTED", "WORKING", "INPUT_REQUIRED", "COMPLETED", "FAILED", "CANCELED"}
TERMINAL = {"COMPLETED", "FAILED", "CANCELED"}
TASK_KEYS = {"id", "state", "createdAt", "updatedAt", "messages", "artifacts", "metadata"}
HTTP_TIMEOUT = (3.05, 10)  # (connect, read) for every request
WAIT_SECONDS = 15.0  # bound on every wait for a task condition
_ids = itertools.count(1)


# -- helpers ------------------------------------------------------------------------------------
def post(url: str, method: str, params: dict[str, Any], **kwargs: Any) -> requests.Response:
    body = {"jsonrpc": "2.0", "method": method, "params": params, "id": f"req-{next(_ids)}"}
    return requests.post(url, json=body, timeout=HTTP_TIMEOUT, **kwargs)


def rpc(url: str, method: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    resp = post(url, method, params, **kwargs)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    payload = resp.json()
    assert payload["jsonrpc"] == "2.0"
    return payload


def send(url: str, text: str, *extra_parts: dict[str, Any]) -> str:
    message = {"role": "user", "parts": [{"type": "text", "content": text}, *extra_parts]}
    payload = rpc(url, "tasks/send", {"message": message})
    assert set(payload["result"]) == {"id"}, payload
    return payload["result"]["id"]


def get_task(url: str, task_id: str) -> dict[str, Any]:
    payload = rpc(url, "tasks/get", {"id": task_id})
    assert "error" not in payload, payload
    return payload["result"]


def wait_for(url: str, task_id: str, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """Poll tasks/get until ``predicate(task)`` holds, bounded by WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    task = get_task(url, task_id)
    while not predicate(task):
        if time.monotonic() >= deadline:
            raise AssertionError(f"task {task_id} not {what} within {WAIT_SECONDS}s; last: {task}")
        time.sleep(0.05)  # poll interval between two tasks/get checks of the condition
        task = get_task(url, task_id)
    return task


def wait_state(url: str, task_id: str, *states: str) -> dict[str, Any]:
    return wait_for(url, task_id, lambda t: t["state"] in states, f"in {states}")


def open_stream(url: str, task_id: str, **kwargs: Any) -> requests.Response:
    body = {"jsonrpc": "2.0", "method": "tasks/sendSubscribe", "params": {"id": task_id}, "id": f"req-{next(_ids)}"}
    return requests.post(
        url, json=body, stream=True, timeout=HTTP_TIMEOUT, headers={"Accept": "text/event-stream"}, **kwargs
    )


def read_events(resp: requests.Response) -> list[tuple[str, dict[str, Any]]]:
    """Read an SSE body to its end: [(event name, data)]. Each read is bounded by the read timeout,
    the whole stream by WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    events: list[tuple[str, dict[str, Any]]] = []
    name, data_lines = "message", []
    with resp:
        for line in resp.iter_lines(chunk_size=None, decode_unicode=True):
            assert time.monotonic() < deadline, f"stream still open after {WAIT_SECONDS}s: {events}"
            if line == "":
                if data_lines:
                    events.append((name, json.loads("\n".join(data_lines))))
                name, data_lines = "message", []
            elif line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data_lines.append(line[len("data:"):].lstrip())
            else:
                assert not line.startswith("id:"), "the SDK sends no id: lines"
    if data_lines:
        events.append((name, json.loads("\n".join(data_lines))))
    return events


def texts(message: dict[str, Any]) -> list[str]:
    return [p["content"] for p in message["parts"] if p["type"] == "text"]


# -- the fixture ----------------------------------------------------------------------------------
def test_fixture_serves_card(agentvault_sdk_agent) -> None:
    agent = agentvault_sdk_agent
    assert agent.base_url.startswith("http://127.0.0.1:")
    assert agent.rpc_url == agent.base_url + "/a2a/"
    assert agent.process.poll() is None
    resp = requests.get(agent.card_url, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200
    card = resp.json()
    # The SDK's card model rejects http://127.0.0.1, so the card names localhost.
    assert card["url"] == f"http://localhost:{agent.port}/a2a/"
    assert card["authSchemes"] == [{"scheme": "none"}]
    for key in ("schemaVersion", "humanReadableId", "agentVersion", "name", "description", "provider", "capabilities"):
        assert key in card


# -- wire format ----------------------------------------------------------------------------------
def test_send_then_get_shape(agentvault_sdk_agent) -> None:
    url = agentvault_sdk_agent.rpc_url
    text = "hello sleep=0.2"
    task_id = send(url, text, {"type": "data", "content": {"topic": "x"}})

    task = get_task(url, task_id)  # capture 02
    assert set(task) == TASK_KEYS
    assert task["id"] == task_id
    assert task["state"] in STATES
    assert task["createdAt"].endswith("Z") and task["updatedAt"].endswith("Z")
    assert task["messages"][0] == {
        "role": "user",
        "parts": [
            {"type": "text", "content": text},
            {"type": "data", "content": {"topic": "x"}, "mediaType": "application/json"},
        ],
        "metadata": None,
    }

    final = wait_state(url, task_id, *TERMINAL)  # capture 04
    assert final["state"] == "COMPLETED"
    assert set(final) == TASK_KEYS
    assert final["updatedAt"] >= final["createdAt"]
    assert [m["role"] for m in final["messages"]] == ["user", "assistant"]
    assert final["artifacts"] == [
        {
            "id": f"{task_id}-result",
            "type": "result",
            "content": {"answer": text, "data": {"topic": "x"}},
            "url": None,
            "mediaType": "application/json",
            "metadata": None,
        }
    ]
    assert final["metadata"] is None


def test_sse_stream_ends_completed(agentvault_sdk_agent) -> None:
    url = agentvault_sdk_agent.rpc_url
    task_id = send(url, "stream me delay=1.0 sleep=0.4")
    resp = open_stream(url, task_id)  # capture 03
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    # The listener is registered before the headers leave, so a task still SUBMITTED now cannot
    # have emitted WORKING unseen.
    subscribed_before_working = get_task(url, task_id)["state"] == "SUBMITTED"
    events = read_events(resp)

    names = [name for name, _ in events]
    assert set(names) <= {"task_status", "task_message", "task_artifact"}, names
    assert names[-1] == "task_status" and events[-1][1]["state"] == "COMPLETED"
    assert set(events[-1][1]) == {"taskId", "state", "timestamp", "message"}
    assert all(data["taskId"] == task_id for _, data in events)
    if subscribed_before_working:
        assert names == ["task_status", "task_message", "task_artifact", "task_status"], names
        assert events[0][1]["state"] == "WORKING"
    message_events = [data for name, data in events if name == "task_message"]
    assert message_events and set(message_events[0]) == {"taskId", "message", "timestamp"}
    assert texts(message_events[0]["message"]) == ["half way"]
    (artifact,) = [data["artifact"] for name, data in events if name == "task_artifact"]
    assert artifact["content"] == {"answer": "stream me delay=1.0 sleep=0.4"}
    assert get_task(url, task_id)["state"] == "COMPLETED"


def test_subscribe_to_finished_task_gets_terminal_status(agentvault_sdk_agent) -> None:
    url = agentvault_sdk_agent.rpc_url
    task_id = send(url, "quick")
    wait_state(url, task_id, *TERMINAL)
    resp = open_stream(url, task_id)
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = read_events(resp)
    assert [(n, d["state"]) for n, d in events] == [("task_status", "COMPLETED")]


def test_subscribe_unknown_task_is_json_error(agentvault_sdk_agent) -> None:
    unknown = f"nope-{uuid.uuid4().hex[:6]}"
    resp = open_stream(agentvault_sdk_agent.rpc_url, unknown)  # capture 06
    with resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        payload = resp.json()
    assert payload["error"] == {"code": -32001, "message": f"Task not found: {unknown}"}
    assert "result" not in payload


def test_get_unknown_task_and_protocol_errors(agentvault_sdk_agent) -> None:
    url = agentvault_sdk_agent.rpc_url
    assert rpc(url, "tasks/get", {"id": "nope"})["error"] == {"code": -32001, "message": "Task not found: nope"}
    assert rpc(url, "tasks/cancel", {"id": "nope"})["error"]["code"] == -32001
    assert rpc(url, "tasks/resubscribe", {"id": "x"})["error"] == {"code": -32601, "message": "Method not found"}
    assert rpc(url, "tasks/get", {})["error"]["code"] == -32602
    resp = requests.post(url, data="not json", headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT)
    assert resp.json() == {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
    resp = post(url.rstrip("/"), "tasks/get", {"id": "nope"}, allow_redirects=False)  # capture 09
    assert resp.status_code == 307 and resp.headers["location"].endswith("/a2a/")


def test_cancel_running_then_again(agentvault_sdk_agent) -> None:
    url = agentvault_sdk_agent.rpc_url
    task_id = send(url, "long job sleep=30")
    wait_state(url, task_id, "WORKING")
    assert rpc(url, "tasks/cancel", {"id": task_id})["result"] == {"success": True, "message": None}  # capture 16
    task = wait_state(url, task_id, *TERMINAL)  # capture 17
    assert task["state"] == "CANCELED"
    assert task["artifacts"] == []
    assert rpc(url, "tasks/cancel", {"id": task_id})["result"] == {"success": False, "message": None}  # 18


def test_cancel_finished_task(agentvault_sdk_agent) -> None:
    url = agentvault_sdk_agent.rpc_url
    task_id = send(url, "short")  # default duration
    assert wait_state(url, task_id, *TERMINAL)["state"] == "COMPLETED"
    resp = post(url, "tasks/cancel", {"id": task_id})  # capture 07
    assert resp.status_code == 200
    assert resp.json()["result"] == {"success": False, "message": None}


def test_failed_task_reports_reason_three_ways(agentvault_sdk_agent) -> None:
    url = agentvault_sdk_agent.rpc_url
    task_id = send(url, "fail please delay=1.0 sleep=0.2")
    resp = open_stream(url, task_id)  # capture 14
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = read_events(resp)
    name, last = events[-1]
    assert name == "task_status" and last["state"] == "FAILED"
    reason = last["message"]
    assert reason
    assert not [d for n, d in events if n == "task_artifact"]

    task = get_task(url, task_id)  # capture 15
    assert task["state"] == "FAILED"
    assert task["metadata"] == {"error": reason}
    assert task["messages"][-1]["role"] == "assistant" and texts(task["messages"][-1]) == [reason]
    assert task["artifacts"] == []


def test_follow_up_message_resumes_input_required(agentvault_sdk_agent) -> None:
    url = agentvault_sdk_agent.rpc_url
    task_id = send(url, "ask me input_required sleep=0.2")
    task = wait_state(url, task_id, "INPUT_REQUIRED", *TERMINAL)
    assert task["state"] == "INPUT_REQUIRED"
    assert task["messages"][-1]["role"] == "assistant"
    follow_up = {"role": "user", "parts": [{"type": "text", "content": "the follow-up"}]}
    assert rpc(url, "tasks/send", {"id": task_id, "message": follow_up})["result"] == {"id": task_id}
    final = wait_state(url, task_id, *TERMINAL)
    assert final["state"] == "COMPLETED"
    assert final["artifacts"][0]["content"] == {"answer": "the follow-up"}
    # A finished task takes no more messages: an agent error, -32000.
    assert rpc(url, "tasks/send", {"id": task_id, "message": follow_up})["error"]["code"] == -32000


# -- agent options ----------------------------------------------------------------------------------
def test_api_key_option(agentvault_sdk_agent_factory) -> None:
    agent = agentvault_sdk_agent_factory("--api-key", "s3cret")
    card = requests.get(agent.card_url, timeout=HTTP_TIMEOUT).json()
    assert card["authSchemes"][0]["scheme"] == "apiKey"
    resp = post(agent.rpc_url, "tasks/get", {"id": "nope"})  # capture 12
    assert resp.status_code == 401 and resp.json() == {"detail": "bad api key"}
    payload = rpc(agent.rpc_url, "tasks/get", {"id": "nope"}, headers={"X-Api-Key": "s3cret"})  # capture 13
    assert payload["error"]["code"] == -32001


def test_without_sdk_error_handlers(agentvault_sdk_agent_factory) -> None:
    agent = agentvault_sdk_agent_factory("--no-error-handlers")
    resp = post(agent.rpc_url, "tasks/get", {"id": "nope"})  # capture 19
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == "Internal Server Error"
