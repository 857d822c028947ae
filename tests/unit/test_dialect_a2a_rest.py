"""Dialect ``a2a-rest`` (A2A 1.0 HTTP+JSON) against the captured a2a-sdk 1.3.0 bytes, sync and async."""

from __future__ import annotations

import json

import pytest

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.errors import StreamUnavailableError
from airflow_agentvault.protocol.models import Message, TaskState, TextPart

from a2a_wire import JSON, SSE, Wire, body, http, sections

pytestmark = pytest.mark.respx(assert_all_called=False)

BASE = "http://agent.test/rest"
REST = sections("15-rest.txt")
TASK = "05f73024-8d2b-463e-9d06-da4478c2c51f"


@pytest.fixture(params=["sync", "async"])
async def wire(request, requests_mock, respx_mock):
    harness = Wire(request.param, requests_mock, respx_mock)
    harness.connect("a2a-rest", BASE)
    yield harness
    await harness.aclose()


async def test_send_posts_message_send_without_blocking(wire):
    answer = json.loads(body("03-v10-SendMessage-returnImmediately.txt"))["result"]  # the same SendMessageResponse
    wire.reply("POST", f"{BASE}/message:send", (200, {"Content-Type": "application/a2a+json"},
                                                 json.dumps(answer).encode()))
    assert await wire.call("send", Message(role="user", parts=[TextPart(content="hi")])) == answer["task"]["id"]
    (request,) = wire.sent()
    assert request["method"] == "POST" and request["headers"]["a2a-version"] == "1.0"
    assert request["json"]["configuration"] == {"returnImmediately": True}
    assert request["json"]["message"]["parts"] == [{"text": "hi"}] and "jsonrpc" not in request["json"]


async def test_get_a_task(wire):
    wire.reply("GET", f"{BASE}/tasks/{TASK}", http(REST["REST 1.0 GET /tasks/{id}?historyLength=0"]))
    task = await wire.call("get", TASK)
    assert task.state is TaskState.COMPLETED and task.artifacts[0].content == "chunk-1 chunk-2"


async def test_task_ids_are_quoted_in_the_path(wire):
    wire.reply("GET", f"{BASE}/tasks/a%2Fb", http(REST["REST 1.0 GET /tasks/{id}?historyLength=0"]))
    await wire.call("get", "a/b")
    assert wire.sent()[0]["url"] == f"{BASE}/tasks/a%2Fb"


@pytest.mark.parametrize("op, method, path, section", [
    ("get", "GET", "/tasks/bogus", "REST 1.0 GET /tasks/bogus"),
    ("cancel", "POST", "/tasks/bogus:cancel", "REST 1.0 POST /tasks/bogus:cancel"),
])
async def test_unknown_task_is_task_not_found_by_its_reason(wire, op, method, path, section):
    wire.reply(method, BASE + path, http(REST[section]))
    with pytest.raises(errors.TaskNotFoundError) as caught:
        await wire.call(op, "bogus")
    assert caught.value.retryable and "Task not found" in caught.value.detail


async def test_subscribe_streams_unwrapped_events(wire):
    status, headers, stream = http(REST["REST 1.0 POST /message:stream"])
    wire.reply("GET", f"{BASE}/tasks/{TASK}:subscribe", (status, SSE, stream))
    events, error = await wire.subscribe(TASK)
    assert error is None
    assert [getattr(e, "state", None) for e in events] == [TaskState.SUBMITTED, TaskState.WORKING, None, None,
                                                         TaskState.COMPLETED]
    assert events[3].artifact.content == "chunk-1 chunk-2"
    assert wire.sent()[0]["headers"]["accept"] == "text/event-stream"


async def test_subscribe_to_a_finished_task_is_unavailable(wire):
    wire.reply("GET", f"{BASE}/tasks/{TASK}:subscribe", http(REST["REST 1.0 GET /tasks/{id}:subscribe finished"]))
    events, error = await wire.subscribe(TASK)
    assert isinstance(error, StreamUnavailableError) and error.code == -32004


async def test_subscribe_to_an_unknown_task(wire):
    wire.reply("GET", f"{BASE}/tasks/bogus:subscribe", http(REST["REST 1.0 POST /tasks/bogus:subscribe"]))
    wire.reply("GET", f"{BASE}/tasks/bogus", http(REST["REST 1.0 GET /tasks/bogus"]))
    events, error = await wire.subscribe("bogus")
    assert type(error) is errors.TaskNotFoundError


async def test_version_not_supported_is_a_protocol_violation(wire):
    wire.reply("GET", f"{BASE}/tasks/t", http(REST["REST 1.0 GET /tasks/bogus WITHOUT A2A-Version header"]))
    with pytest.raises(errors.ProtocolViolationError) as caught:
        await wire.call("get", "t")
    assert caught.value.code == -32009


async def test_a_404_without_an_a2a_reason_is_a_wrong_url(wire):
    wire.reply("GET", f"{BASE}/tasks/t", (404, {"Content-Type": "text/plain"}, b"Not Found"))
    with pytest.raises(errors.ProtocolViolationError, match="HTTP 404"):
        await wire.call("get", "t")


async def test_cancel_of_a_finished_task_answers_success_false(wire):
    refusal = {"error": {"code": 400, "status": "FAILED_PRECONDITION", "message": "Task cannot be canceled",
                         "details": [{"reason": "TASK_NOT_CANCELABLE", "domain": "a2a-protocol.org"}]}}
    wire.reply("POST", f"{BASE}/tasks/t:cancel", (400, JSON, json.dumps(refusal).encode()))
    answer = await wire.call("cancel", "t")
    assert answer.success is False and "cannot be canceled" in answer.message
