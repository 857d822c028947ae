"""Dialect ``a2a-0.3`` (A2A 0.3 JSON-RPC) against the captured bytes of a2a-sdk 1.3.0 (0.3 compat) and 0.3.26.

Client-level tests run with the sync client (requests-mock) and the async one (respx); both decode
through the one codec of :mod:`a2a_v03`.
"""

from __future__ import annotations

import json

import pytest

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.codec import UnknownEvent
from airflow_agentvault.protocol.dialects.a2a_v03 import V03Codec, V03StreamDecoder, task_from_wire
from airflow_agentvault.protocol.errors import StreamUnavailableError
from airflow_agentvault.protocol.exchange import ServerEvent
from airflow_agentvault.protocol.models import DataPart, FilePart, Message, TaskState, TextPart

from a2a_wire import JSON, SSE, Wire, event_stream, http, json_line, raw, sections

pytestmark = pytest.mark.respx(assert_all_called=False)

RPC = "http://agent.test/"
COMPAT = sections("13-v03-compat.txt")
SDK0326 = sections("18-sdk0326-server.txt")
TASK = "b8afa71c-8a1d-4d47-ada5-203bf364354a"


@pytest.fixture(params=["sync", "async"])
async def wire(request, requests_mock, respx_mock):
    harness = Wire(request.param, requests_mock, respx_mock)
    harness.connect("a2a-0.3", RPC)
    yield harness
    await harness.aclose()


def feed_all(decoder, stream: bytes) -> list:
    events = []
    for line in stream.split(b"\r\n"):
        if line.startswith(b"data: "):
            events.extend(decoder.feed(ServerEvent(None, line[6:].decode())))
    return events


def decoder(task_id: str = TASK) -> V03StreamDecoder:
    return V03StreamDecoder(V03Codec().subscribe_request(RPC, task_id))


# -- the codec, without I/O ---------------------------------------------------------------------------------


def test_message_stream_of_a_1x_server_in_03_mode():
    events = feed_all(decoder(), event_stream(raw("08-v03-message-stream.raw")))
    assert [getattr(e, "state", None) for e in events] == [TaskState.SUBMITTED, TaskState.WORKING, None, None,
                                                         TaskState.COMPLETED]
    assert events[1].message_text == "working on it"
    assert [e.artifact.content for e in events[2:4]] == ["chunk-1 ", "chunk-1 chunk-2"]
    assert events[0].task_id == "fcc690a0-097b-44f8-8828-eff75ef07e71"


def test_message_stream_of_a_0326_server_decodes_the_same():
    events = feed_all(decoder(), raw("19-sdk0326-message-stream.raw"))
    assert [getattr(e, "state", None) for e in events] == [TaskState.SUBMITTED, TaskState.WORKING, None, None,
                                                         TaskState.COMPLETED]
    assert events[3].artifact.content == "chunk-1 chunk-2"
    assert events[4].timestamp.isoformat() == "2026-11-24T06:16:18.450089+00:00"


def test_resubscribe_snapshot_reads_as_a_status_event():
    stream = http(COMPAT["v0.3 tasks/resubscribe running"])[2]
    events = feed_all(decoder(), stream)
    assert (events[0].state, events[0].message_text) == (TaskState.WORKING, "working on it")
    assert events[-1].state is TaskState.COMPLETED and events[-2].artifact.content == "chunk-1 chunk-2"


def test_task_normalises_with_history_roles_and_status_message():
    result = json.loads(json_line(COMPAT["v0.3 tasks/get running"]))["result"]
    task = task_from_wire(result)
    assert task.id == TASK and task.state is TaskState.SUBMITTED
    assert [(m.role, m.text) for m in task.messages] == [("user", "hi")]
    failed = task_from_wire({"kind": "task", "id": "t", "status": {"state": "failed", "message": {
        "kind": "message", "messageId": "x", "role": "agent", "parts": [{"kind": "text", "text": "boom"}]}}})
    assert failed.state is TaskState.FAILED and failed.last_agent_text() == "boom"


@pytest.mark.parametrize("state, expected", [
    ("rejected", TaskState.REJECTED), ("auth-required", TaskState.AUTH_REQUIRED), ("unknown", TaskState.UNKNOWN),
    ("input-required", TaskState.INPUT_REQUIRED), ("canceled", TaskState.CANCELED),
])
def test_every_state_normalises(state, expected):
    assert task_from_wire({"id": "t", "status": {"state": state}}).state is expected


def test_file_and_data_parts():
    task = task_from_wire({"id": "t", "status": {"state": "completed"}, "artifacts": [
        {"artifactId": "a", "name": "report", "parts": [
            {"kind": "file", "file": {"uri": "http://f/r.pdf", "mimeType": "application/pdf", "name": "r.pdf"}}]},
        {"artifactId": "b", "parts": [{"kind": "file", "file": {"bytes": "aGk=", "mimeType": "text/plain"}}]},
        {"artifactId": "c", "parts": [{"kind": "data", "data": {"n": 1}}]},
    ]})
    report, inline, data = task.artifacts
    assert (report.type, report.url, report.metadata) == ("report", "http://f/r.pdf", {"filename": "r.pdf"})
    assert inline.url == "data:text/plain;base64,aGk="
    assert data.content == {"n": 1}
    with pytest.raises(errors.ProtocolViolationError, match="unknown kind 'video'"):
        task_from_wire({"id": "t", "status": {"state": "working"}, "history": [
            {"role": "user", "parts": [{"kind": "video"}]}]})


def test_an_unknown_event_kind_is_an_unknown_event_the_core_skips():
    with pytest.raises(UnknownEvent, match="kind 'push'"):
        decoder().feed(ServerEvent(None, json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"kind": "push"}})))


# -- the clients (sync and async) ---------------------------------------------------------------------------


async def test_send_does_not_block_and_speaks_03(wire):
    sent = COMPAT["v0.3 message/send (blocking default? configuration.blocking=false)"]
    wire.reply("POST", RPC, (200, JSON, json_line(sent)))
    message = Message(role="user", parts=[TextPart(content="hi"), DataPart(content={"k": 1}),
                                          FilePart(url="http://f/x", media_type="text/csv", filename="x.csv")])
    assert await wire.call("send", message) == TASK
    (request,) = wire.sent()
    assert "a2a-version" not in request["headers"]
    assert request["json"]["method"] == "message/send"
    params = request["json"]["params"]
    assert params["configuration"] == {"blocking": False}
    assert params["message"]["kind"] == "message" and params["message"]["role"] == "user"
    assert params["message"]["parts"] == [
        {"kind": "text", "text": "hi"}, {"kind": "data", "data": {"k": 1}},
        {"kind": "file", "file": {"uri": "http://f/x", "mimeType": "text/csv", "name": "x.csv"}}]


async def test_a_message_answer_without_a_task_is_a_protocol_violation(wire):
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"kind": "message", "messageId": "m", "role": "agent",
                                                      "parts": [{"kind": "text", "text": "hello"}]}}
    wire.reply("POST", RPC, (200, JSON, json.dumps(answer).encode()))
    with pytest.raises(errors.ProtocolViolationError, match="message and no task"):
        await wire.call("send", Message(role="user", parts=[TextPart(content="hi")]))


async def test_get_running_and_unknown(wire):
    wire.reply("POST", RPC, (200, JSON, json_line(COMPAT["v0.3 tasks/get running"])),
               http(COMPAT["v0.3 tasks/get unknown"]))
    assert (await wire.call("get", TASK)).state is TaskState.SUBMITTED
    assert wire.sent()[0]["json"]["method"] == "tasks/get"
    with pytest.raises(errors.TaskNotFoundError) as caught:
        await wire.call("get", "bogus")
    assert caught.value.code == -32001 and caught.value.method == "tasks/get"


async def test_resubscribe_to_a_running_task(wire):
    status, headers, stream = http(COMPAT["v0.3 tasks/resubscribe running"])
    wire.reply("POST", RPC, (status, headers, stream))
    events, error = await wire.subscribe(TASK)
    assert error is None and events[-1].state is TaskState.COMPLETED and len(events) == 4
    assert wire.sent()[0]["json"]["method"] == "tasks/resubscribe"


@pytest.mark.parametrize("capture, section, code", [
    (COMPAT, "v0.3 tasks/resubscribe finished", -32004),  # a 1.x server in 0.3 mode
    (SDK0326, "tasks/resubscribe finished", -32602),  # a 0.3.26 server: InvalidParams "... in terminal state"
])
async def test_resubscribe_to_a_finished_task_answered_inside_the_stream_is_unavailable(wire, capture, section, code):
    wire.reply("POST", RPC, http(capture[section]))
    events, error = await wire.subscribe(TASK)
    assert events == [] and isinstance(error, StreamUnavailableError) and error.code == code


async def test_resubscribe_to_an_unknown_task_answered_inside_the_stream(wire):
    wire.reply("POST", RPC, http(COMPAT["v0.3 tasks/resubscribe unknown"]), http(COMPAT["v0.3 tasks/get unknown"]))
    events, error = await wire.subscribe("bogus")
    assert events == [] and type(error) is errors.TaskNotFoundError


async def test_resubscribe_not_found_for_a_stopped_task_is_unavailable(wire):
    # a2a-sdk 0.3.26 answers -32001 to tasks/resubscribe once the executor returned (input-required),
    # while tasks/get still has the task: no stream, so the follower should read it at once.
    stopped = {"jsonrpc": "2.0", "id": 2, "result": {"kind": "task", "id": "t", "status": {
        "state": "input-required", "message": {"kind": "message", "messageId": "q", "role": "agent",
                                               "parts": [{"kind": "text", "text": "which year?"}]}}}}
    wire.reply("POST", RPC, http(SDK0326["tasks/resubscribe unknown"]), (200, JSON, json.dumps(stopped).encode()))
    events, error = await wire.subscribe("t")
    assert events == [] and isinstance(error, StreamUnavailableError) and "INPUT_REQUIRED" in error.detail


async def test_a_plain_json_error_to_a_subscription_is_raised_too(wire):
    wire.reply("POST", RPC, http(COMPAT["v0.3 tasks/get unknown"]), http(COMPAT["v0.3 tasks/get unknown"]))
    events, error = await wire.subscribe("bogus")
    assert type(error) is errors.TaskNotFoundError


async def test_cancel_of_a_finished_task_answers_success_false(wire):
    wire.reply("POST", RPC, (200, JSON, json_line(sections("14-cancel.txt")["v0.3 tasks/cancel terminal"])))
    answer = await wire.call("cancel", TASK)
    assert answer.success is False and "cannot be canceled" in answer.message
    assert wire.sent()[0]["json"]["method"] == "tasks/cancel"


async def test_stream_stops_at_input_required(wire):
    update = {"jsonrpc": "2.0", "id": 1, "result": {"kind": "status-update", "taskId": "t", "final": True,
                                                      "status": {"state": "input-required"}}}
    extra = {"jsonrpc": "2.0", "id": 1, "result": {"kind": "status-update", "taskId": "t",
                                                     "status": {"state": "working"}}}
    wire.reply("POST", RPC, (200, SSE, f"data: {json.dumps(update)}\r\n\r\ndata: {json.dumps(extra)}\r\n\r\n".encode()))
    events, error = await wire.subscribe("t")
    assert error is None and [e.state for e in events] == [TaskState.INPUT_REQUIRED]
