"""Dialect ``a2a-1.0`` (A2A 1.0 JSON-RPC) against the captured a2a-sdk 1.3.0 bytes.

Every client-level test runs twice, with the sync client (requests-mock) and the async one (respx):
both decode through the one codec of :mod:`a2a_v10`, whose pure parts are tested directly as well.
"""

from __future__ import annotations

import json

import pytest

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncTaskFollower
from airflow_agentvault.protocol.client import TaskFollower
from airflow_agentvault.protocol.dialects.a2a_v10 import V10Codec, V10StreamDecoder, task_from_wire
from airflow_agentvault.protocol.errors import StreamUnavailableError
from airflow_agentvault.protocol.exchange import ServerEvent
from airflow_agentvault.protocol.follow import PATH_POLLING
from airflow_agentvault.protocol.models import (
    DataPart,
    FilePart,
    Message,
    TaskArtifactEvent,
    TaskState,
    TaskStatusEvent,
    TextPart,
)
from airflow_agentvault.protocol.timing import Timing

from a2a_wire import JSON, SSE, Wire, body, event_stream, http, json_line, raw, sections

pytestmark = pytest.mark.respx(assert_all_called=False)

RPC = "http://agent.test/"
TASK = "163036bf-6324-4edf-81fd-8692cde66e9e"


@pytest.fixture(params=["sync", "async"])
async def wire(request, requests_mock, respx_mock):
    harness = Wire(request.param, requests_mock, respx_mock)
    harness.connect("a2a-1.0", RPC)
    yield harness
    await harness.aclose()


def feed_all(decoder, stream: bytes) -> list:
    """Feed every ``data:`` line of a captured stream to a decoder (keep-alive comments are not data)."""
    events = []
    for line in stream.split(b"\r\n"):
        if line.startswith(b"data: "):
            events.extend(decoder.feed(ServerEvent(None, line[6:].decode())))
    return events


# -- the codec, without I/O ---------------------------------------------------------------------------------


def test_blocking_send_result_normalises_task_history_status_and_artifacts():
    result = json.loads(body("02-v10-SendMessage-blocking.txt"))["result"]
    task = task_from_wire(result["task"])
    assert task.id == "de18c8df-53b4-443e-98c8-bc31aef6748b" and task.state is TaskState.COMPLETED
    assert [(m.role, m.text) for m in task.messages] == [("user", "hi"), ("assistant", "working on it")]
    assert task.last_agent_text() == "working on it"
    (artifact,) = task.artifacts
    assert (artifact.id, artifact.type, artifact.content, artifact.media_type) == (
        "result", "result", "chunk-1 chunk-2", "text/plain")
    assert task.updated_at.isoformat().startswith("2026-11-24T06:12:24.654210")


def test_polled_tasks_follow_the_states_and_the_growing_artifact():
    polls = [json.loads(http(s)[2])["result"] for s in sections("04-v10-GetTask-poll.txt").values()]
    tasks = [task_from_wire(p) for p in polls]
    assert [t.state for t in tasks] == [TaskState.SUBMITTED, TaskState.WORKING, TaskState.WORKING,
                                        TaskState.WORKING, TaskState.COMPLETED, TaskState.COMPLETED]
    # The WORKING status message is not in a history (GetTask without history): it joins the messages.
    assert tasks[1].messages[-1].text == "working on it" and tasks[1].messages[-1].role == "assistant"
    assert [[a.content for a in t.artifacts] for t in tasks] == [
        [], [], ["chunk-1 "], ["chunk-1 chunk-2"], ["chunk-1 chunk-2"], ["chunk-1 chunk-2"]]


def test_a_status_message_already_in_the_history_is_not_repeated():
    task = task_from_wire({
        "id": "t", "status": {"state": "TASK_STATE_FAILED", "message": {
            "messageId": "m2", "role": "ROLE_AGENT", "parts": [{"text": "boom"}]}},
        "history": [{"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]},
                    {"messageId": "m2", "role": "ROLE_AGENT", "parts": [{"text": "boom"}]}],
    })
    assert [m.text for m in task.messages] == ["hi", "boom"]


@pytest.mark.parametrize("state, expected", [
    ("TASK_STATE_AUTH_REQUIRED", TaskState.AUTH_REQUIRED), ("TASK_STATE_REJECTED", TaskState.REJECTED),
    ("TASK_STATE_UNSPECIFIED", TaskState.UNKNOWN), ("TASK_STATE_INPUT_REQUIRED", TaskState.INPUT_REQUIRED),
    ("TASK_STATE_CANCELED", TaskState.CANCELED),
])
def test_every_state_normalises(state, expected):
    assert task_from_wire({"id": "t", "status": {"state": state}}).state is expected


def test_an_unknown_state_or_part_is_a_protocol_violation():
    with pytest.raises(errors.ProtocolViolationError, match="unknown task state 'TASK_STATE_ERROR'"):
        task_from_wire({"id": "t", "status": {"state": "TASK_STATE_ERROR"}})
    with pytest.raises(errors.ProtocolViolationError, match="part with no known content"):
        task_from_wire({"id": "t", "status": {"state": "TASK_STATE_WORKING"},
                        "history": [{"role": "ROLE_USER", "parts": [{"video": "x"}]}]})
    with pytest.raises(errors.ProtocolViolationError, match="without field 'id'"):
        task_from_wire({"status": {"state": "TASK_STATE_WORKING"}})


def test_data_file_and_raw_parts_normalise():
    task = task_from_wire({"id": "t", "status": {"state": "TASK_STATE_COMPLETED"}, "artifacts": [
        {"artifactId": "d", "name": "data", "parts": [{"data": {"answer": 42}}]},
        {"artifactId": "f", "parts": [{"url": "http://files/x.pdf", "mediaType": "application/pdf",
                                       "filename": "x.pdf"}]},
        {"artifactId": "r", "parts": [{"raw": "aGk=", "mediaType": "text/plain"}]},
        {"artifactId": "m", "parts": [{"text": "a"}, {"data": [1, 2]}]},
    ]})
    data, file, raw_, mixed = task.artifacts
    assert (data.type, data.content, data.media_type) == ("data", {"answer": 42}, "application/json")
    assert (file.type, file.url, file.media_type, file.metadata) == (
        "artifact", "http://files/x.pdf", "application/pdf", {"filename": "x.pdf"})
    assert raw_.url == "data:text/plain;base64,aGk="
    assert mixed.content == [{"type": "text", "content": "a"},
                             {"type": "data", "content": {"value": [1, 2]}, "mediaType": "application/json"}]


def test_stream_decoder_reassembles_chunks_and_reads_the_snapshot_as_a_status():
    decoder = V10StreamDecoder(V10Codec().subscribe_request(RPC, TASK))
    events = feed_all(decoder, event_stream(raw("09-v10-SubscribeToTask-running.raw")))
    assert [type(e).__name__ for e in events] == ["TaskStatusEvent", "TaskArtifactEvent", "TaskArtifactEvent",
                                                  "TaskStatusEvent"]
    assert (events[0].state, events[0].message_text) == (TaskState.WORKING, "working on it")
    assert [e.artifact.content for e in events[1:3]] == ["chunk-1 ", "chunk-1 chunk-2"]
    assert events[2].artifact.type == "result"  # the appended chunk has no name: the first one's is kept
    assert events[-1].state is TaskState.COMPLETED and events[-1].task_id == TASK


def test_keep_alive_comments_change_nothing():
    plain = feed_all(V10StreamDecoder(V10Codec().subscribe_request(RPC, "t")),
                     event_stream(raw("07-v10-SendStreamingMessage.raw")))
    pinged = feed_all(V10StreamDecoder(V10Codec().subscribe_request(RPC, "t")), raw("16-v10-stream-with-pings.raw"))
    assert [(type(e).__name__, getattr(e, "state", None)) for e in plain] == \
           [(type(e).__name__, getattr(e, "state", None)) for e in pinged]
    assert pinged[-2].artifact.content == "chunk-1 chunk-2"


def test_a_stream_error_object_is_raised_typed():
    decoder = V10StreamDecoder(V10Codec().subscribe_request(RPC, "t"))
    with pytest.raises(errors.TaskNotFoundError):
        decoder.feed(ServerEvent(None, json.dumps({"error": {"code": -32001, "message": "Task not found"}, "id": 1})))
    with pytest.raises(errors.ProtocolViolationError, match="malformed JSON"):
        decoder.feed(ServerEvent(None, "{not json"))


# -- the clients (sync and async) ---------------------------------------------------------------------------


async def test_send_returns_immediately_with_the_task_id(wire):
    wire.reply("POST", RPC, (200, JSON, body("03-v10-SendMessage-returnImmediately.txt")))
    message = Message(role="user", parts=[TextPart(content="hi"), DataPart(content={"k": 1}),
                                          FilePart(url="http://f/x", media_type="text/csv")])
    assert await wire.call("send", message) == "6c58639b-13c6-4e6d-b17d-c681427eb3cb"
    (request,) = wire.sent()
    assert request["headers"]["a2a-version"] == "1.0"
    assert request["json"]["method"] == "SendMessage"
    params = request["json"]["params"]
    assert params["configuration"] == {"returnImmediately": True}
    sent = params["message"]
    assert sent["role"] == "ROLE_USER" and sent["messageId"] and "taskId" not in sent
    assert sent["parts"] == [{"text": "hi"}, {"data": {"k": 1}, "mediaType": "application/json"},
                             {"url": "http://f/x", "mediaType": "text/csv"}]


async def test_follow_up_message_names_the_task(wire):
    wire.reply("POST", RPC, (200, JSON, body("03-v10-SendMessage-returnImmediately.txt")))
    await wire.call("send", Message(role="user", parts=[TextPart(content="more")]), task_id="t-9")
    assert wire.sent()[0]["json"]["params"]["message"]["taskId"] == "t-9"


async def test_get_and_unknown_task(wire):
    polls = sections("04-v10-GetTask-poll.txt")
    wire.reply("POST", RPC, (200, JSON, http(polls["t+2.x s"])[2]), (200, JSON, body("05-v10-GetTask-bogus.txt")))
    task = await wire.call("get", "a165021e-c4e1-42b7-8cbb-52feddfcef4f")
    assert task.state is TaskState.WORKING and task.artifacts[0].content == "chunk-1 "
    assert wire.sent()[0]["json"]["method"] == "GetTask" and wire.sent()[0]["json"]["params"] == {
        "id": "a165021e-c4e1-42b7-8cbb-52feddfcef4f"}
    with pytest.raises(errors.TaskNotFoundError) as caught:
        await wire.call("get", "bogus")
    assert caught.value.code == -32001 and caught.value.retryable and caught.value.method == "GetTask"


async def test_a_call_without_the_version_header_is_a_protocol_violation_with_advice(wire):
    wire.reply("POST", RPC, (200, JSON, body("06-v10-method-without-A2A-Version-header.txt")))
    with pytest.raises(errors.ProtocolViolationError, match="dialect") as caught:
        await wire.call("get", "t")
    assert caught.value.code == -32009 and not caught.value.retryable


async def test_cancel_running_finished_and_unknown(wire):
    cancel = sections("14-cancel.txt")
    wire.reply("POST", RPC, (200, JSON, http(cancel["v1.0 CancelTask running"])[2]),
               (200, JSON, http(cancel["v1.0 CancelTask again (terminal)"])[2]),
               (200, JSON, json_line(cancel["v1.0 CancelTask unknown"])))
    first = await wire.call("cancel", "0a0a1a98-6765-4e34-8b5a-4b28256dcc4c")
    assert first.success is True and "CANCELED" in first.message
    again = await wire.call("cancel", "0a0a1a98-6765-4e34-8b5a-4b28256dcc4c")
    assert again.success is False and "cannot be canceled" in again.message
    with pytest.raises(errors.TaskNotFoundError):
        await wire.call("cancel", "bogus")
    assert {r["json"]["method"] for r in wire.sent()} == {"CancelTask"}


async def test_subscribe_to_a_running_task_yields_snapshot_chunks_and_the_end(wire):
    wire.reply("POST", RPC, (200, SSE, event_stream(raw("09-v10-SubscribeToTask-running.raw"))))
    events, error = await wire.subscribe(TASK, read_timeout=7)
    assert error is None
    assert [getattr(e, "state", None) for e in events] == [TaskState.WORKING, None, None, TaskState.COMPLETED]
    assert events[2].artifact.content == "chunk-1 chunk-2"
    (request,) = wire.sent()
    assert request["json"]["method"] == "SubscribeToTask" and request["json"]["params"] == {"id": TASK}
    assert request["headers"]["accept"] == "text/event-stream" and request["headers"]["a2a-version"] == "1.0"


async def test_subscribe_to_a_finished_task_is_stream_unavailable(wire):
    wire.reply("POST", RPC, (200, JSON, body("10-v10-SubscribeToTask-finished.txt")))
    events, error = await wire.subscribe(TASK)
    assert events == [] and isinstance(error, StreamUnavailableError)
    assert isinstance(error, errors.StreamDisconnectedError) and error.code == -32004
    assert "terminal state" in error.detail


async def test_subscribe_to_an_unknown_task_is_task_not_found(wire):
    # The client asks get once whether the task exists after all (a 0.3 SDK says "not found" for stopped tasks).
    wire.reply("POST", RPC, (200, JSON, body("11-v10-SubscribeToTask-unknown.txt")),
               (200, JSON, body("05-v10-GetTask-bogus.txt")))
    events, error = await wire.subscribe("bogus")
    assert events == [] and type(error) is errors.TaskNotFoundError and error.method == "SubscribeToTask"


async def test_subscribe_stops_on_an_input_required_snapshot(wire):
    # Capture 21: the server keeps this stream open after the snapshot; the client must stop on the snapshot.
    snapshot = {"result": {"task": {"id": "t", "status": {"state": "TASK_STATE_INPUT_REQUIRED", "message": {
        "messageId": "q", "role": "ROLE_AGENT", "parts": [{"text": "which year?"}]}}}}, "id": 1, "jsonrpc": "2.0"}
    wire.reply("POST", RPC, (200, SSE, f"data: {json.dumps(snapshot)}\r\n\r\n".encode()))
    events, error = await wire.subscribe("t")
    assert error is None
    assert [(e.state, e.message_text) for e in events] == [(TaskState.INPUT_REQUIRED, "which year?")]


async def test_a_stream_that_ends_early_is_a_disconnect(wire):
    stream = event_stream(raw("07-v10-SendStreamingMessage.raw"))
    cut = stream[: stream.index(b"data: ", stream.index(b"artifactUpdate"))]  # up to the first chunk
    wire.reply("POST", RPC, (200, SSE, cut))
    events, error = await wire.subscribe("t")
    assert len(events) == 3 and type(error) is errors.StreamDisconnectedError and "without a terminal" in error.detail


async def test_unauthorised_is_not_authorised(wire):
    wire.reply("POST", RPC, (401, JSON, b'{"detail": "bad key"}'))
    with pytest.raises(errors.NotAuthorizedError):
        await wire.call("get", "t")


async def test_fetch_card_names_the_jsonrpc_endpoint(wire):
    wire.reply("GET", "http://agent.test/.well-known/agent-card.json", (200, JSON, body("01-agent-card.txt")))
    card = await wire.call("fetch_card", "http://agent.test/.well-known/agent-card.json")
    assert card.name == "slow-test-agent" and card.url == "http://127.0.0.1:56151/"


# -- the followers go to polling at once when the agent has no stream ---------------------------------------

TIMING = Timing(sse_attempts=3, sse_retry_delay=0.5, poll_interval=0.1, overall_timeout=30)


async def test_followers_poll_at_once_when_the_task_finished_before_the_subscription(wire):
    polls = sections("04-v10-GetTask-poll.txt")
    wire.reply("POST", RPC, (200, JSON, http(polls["t+1.x s"])[2]),  # peek: WORKING
               (200, JSON, body("10-v10-SubscribeToTask-finished.txt")),  # subscription: -32004
               (200, JSON, http(polls["t+5.x s"])[2]))  # first poll: COMPLETED
    slept: list[float] = []
    if wire.mode == "sync":
        follower = TaskFollower(wire.client, TIMING, sleep=slept.append)
        outcome = follower.follow("a165021e-c4e1-42b7-8cbb-52feddfcef4f")
    else:
        async def asleep(seconds):
            slept.append(seconds)

        follower = AsyncTaskFollower(wire.client, TIMING, sleep=asleep)
        outcome = await follower.follow("a165021e-c4e1-42b7-8cbb-52feddfcef4f")
    assert outcome.path == PATH_POLLING and outcome.sse_attempts == 1
    assert outcome.task.state is TaskState.COMPLETED and outcome.task.artifacts[0].content == "chunk-1 chunk-2"
    assert slept == []  # no retry of the subscription, no wait before the first poll
    assert [r["json"]["method"] for r in wire.sent()] == ["GetTask", "SubscribeToTask", "GetTask"]


def test_events_are_status_and_artifact_models():
    events = feed_all(V10StreamDecoder(V10Codec().subscribe_request(RPC, "t")), raw("16-v10-stream-with-pings.raw"))
    assert isinstance(events[0], TaskStatusEvent) and isinstance(events[2], TaskArtifactEvent)
