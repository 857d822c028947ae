"""
Answers and stream events above their size limits, and streams that never end, on both runners.

An answer body above ``max_answer_bytes`` ends the call with AnswerTooLargeError (announced or read); an event
held above ``max_event_bytes`` drops the stream and the task is read with ``get`` (never a second subscription,
it would meet the same event); a stream whose reads bring no event still ends at the deadline. Both framers
apply the same limit (``exchange.check_held``); HTTP is mocked (requests-mock, respx).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

import httpx
import pytest

from airflow_agentvault.protocol import client as blocking
from airflow_agentvault.protocol import errors, operations, sse
from airflow_agentvault.protocol.async_client import AsyncAgentClient, AsyncTaskFollower
from airflow_agentvault.protocol.client import AgentClient, TaskFollower
from airflow_agentvault.protocol.dialects.agentvault import AgentVaultCodec
from airflow_agentvault.protocol.exchange import (
    AuthHeaders,
    BodyLimit,
    Close,
    NextEvents,
    Open,
    Response,
    TransportFailure,
)
from airflow_agentvault.protocol.follow import PATH_POLLING, Follower
from airflow_agentvault.protocol.timing import Timing

RPC = "http://agent.test/a2a/"
JSON = {"Content-Type": "application/json"}
SSE = {"Content-Type": "text/event-stream"}
LIMIT = 1024
TIMING = Timing(verify_interval=0.01, sse_retry_delay=0.0, poll_interval=0.01, overall_timeout=30)


def task_answer(state: str, padding: int = 0) -> bytes:
    task = {"id": "t", "state": state, "messages": [], "artifacts": [], "metadata": {"pad": "x" * padding}}
    return json.dumps({"jsonrpc": "2.0", "id": "1", "result": task}).encode()


def huge_event_stream() -> bytes:
    return b"event: task_message\ndata: " + b"x" * (4 * LIMIT) + b"\n\n"


# -- the framers ---------------------------------------------------------------------------------------------


FRAMERS: dict[str, Callable[[Iterable[bytes], int], Iterator[list]]] = {
    "sseclient-py (blocking)": blocking.event_batches,
    "sse.py (asyncio)": sse.event_batches,
}


@pytest.mark.parametrize("framer", FRAMERS.values(), ids=FRAMERS.keys())
@pytest.mark.parametrize("reads", [
    pytest.param([b"data: " + b"x" * 100] * 20, id="one endless line"),
    pytest.param([b"data: " + b"x" * 100 + b"\n"] * 20, id="data lines without the blank line"),
])
def test_an_event_held_above_the_limit_ends_the_framing(framer, reads):
    with pytest.raises(TransportFailure) as failure:
        list(framer(iter(reads), LIMIT))
    assert failure.value.kind == "too_large" and str(LIMIT) in failure.value.reason


@pytest.mark.parametrize("framer", FRAMERS.values(), ids=FRAMERS.keys())
def test_events_under_the_limit_frame_as_ever_however_long_the_stream(framer):
    reads = [b"event: e\ndata: " + b"y" * (LIMIT // 2) + b"\n\n"] * 50
    batches = list(framer(iter(reads), LIMIT))
    assert sum(len(batch) for batch in batches) == 50


# -- answers -------------------------------------------------------------------------------------------------


def test_a_blocking_answer_above_the_limit_is_answer_too_large(requests_mock):
    requests_mock.post(RPC, content=task_answer("WORKING", 4 * LIMIT), headers=JSON)
    with pytest.raises(errors.AnswerTooLargeError, match="max_answer_bytes") as info:
        AgentClient(RPC, max_answer_bytes=LIMIT).get("t")
    assert info.value.task_id == "t" and info.value.method == "tasks/get" and not info.value.retryable


def test_a_blocking_answer_under_the_limit_is_read_whole(requests_mock):
    requests_mock.post(RPC, content=task_answer("COMPLETED", LIMIT // 2), headers=JSON)
    assert AgentClient(RPC, max_answer_bytes=2 * LIMIT).get("t").state.value == "COMPLETED"


async def test_an_async_answer_above_the_limit_is_answer_too_large(respx_mock):
    respx_mock.post(RPC).mock(return_value=httpx.Response(200, content=task_answer("WORKING", 4 * LIMIT),
                                                          headers=JSON))
    async with AsyncAgentClient(RPC, max_answer_bytes=LIMIT) as client:
        with pytest.raises(errors.AnswerTooLargeError, match="max_answer_bytes") as info:
            await client.get("t")
    assert info.value.task_id == "t"


def test_an_announced_length_above_the_limit_is_refused_before_reading():
    BodyLimit(10, None, "10").take(b"x" * 10)
    with pytest.raises(TransportFailure, match="11 bytes announced") as failure:
        BodyLimit(10, None, "11")
    assert failure.value.kind == "too_large"


# -- a stream with an event above the limit: read the task with get, once ------------------------------------


def test_a_blocking_stream_with_an_event_above_the_limit_falls_back_to_get_at_once(requests_mock):
    gets = iter([task_answer("WORKING"), task_answer("COMPLETED")])

    def answer(request, context):
        if request.json()["method"] == "tasks/sendSubscribe":
            context.headers = SSE
            return huge_event_stream()
        context.headers = JSON
        return next(gets)

    route = requests_mock.post(RPC, content=answer)
    outcome = TaskFollower(AgentClient(RPC, max_event_bytes=LIMIT), TIMING).follow("t")
    assert outcome.path == PATH_POLLING and outcome.task.state.value == "COMPLETED"
    methods = [call.json()["method"] for call in route.request_history]
    assert methods == ["tasks/get", "tasks/sendSubscribe", "tasks/get"]  # one subscription only


async def test_an_async_stream_with_an_event_above_the_limit_falls_back_to_get_at_once(respx_mock):
    gets = iter([task_answer("WORKING"), task_answer("COMPLETED")])

    def answer(request):
        if json.loads(request.content)["method"] == "tasks/sendSubscribe":
            return httpx.Response(200, content=huge_event_stream(), headers=SSE)
        return httpx.Response(200, content=next(gets), headers=JSON)

    route = respx_mock.post(RPC).mock(side_effect=answer)
    async with AsyncAgentClient(RPC, max_event_bytes=LIMIT) as client:
        outcome = await AsyncTaskFollower(client, TIMING).follow("t")
    assert outcome.path == PATH_POLLING and outcome.task.state.value == "COMPLETED"
    assert [json.loads(call.request.content)["method"] for call in route.calls] == [
        "tasks/get", "tasks/sendSubscribe", "tasks/get"]


# -- a stream whose reads bring no event (bytes one at a time) ends at the deadline -------------------------------


def test_reads_without_events_end_at_the_deadline():
    now = [0.0]
    agent = operations.Agent(AgentVaultCodec(), RPC)
    follower = Follower(agent, Timing(overall_timeout=5, sse_attempts=1), clock=lambda: now[0])
    program = follower.follow("t", deadline=5.0, seen=None)
    value = None
    reads = 0
    with pytest.raises(errors.WaitTimeoutError, match="still streaming") as info:
        while True:
            effect = program.send(value)
            if type(effect) is NextEvents:
                reads += 1
                now[0] += 0.5  # half a second per byte: each read completes no event
                value = []
            elif type(effect) is Open:
                value = Response(200, "text/event-stream")
            elif type(effect) in (AuthHeaders, Close):
                value = {} if type(effect) is AuthHeaders else None
            else:  # the first look: the task is working
                value = Response(200, "application/json", task_answer("WORKING"))
    assert reads == 10 and info.value.task_id == "t"


# -- an artifact assembled from chunks above the limit ---------------------------------------------------------


def test_an_artifact_whose_chunks_grow_past_the_limit_ends_the_stream_for_get():
    from airflow_agentvault.protocol.dialects.a2a_v10 import V10Codec, V10StreamDecoder
    from airflow_agentvault.protocol.exchange import ServerEvent

    decoder = V10StreamDecoder(V10Codec().subscribe_request(RPC, "t"))
    decoder.max_bytes = LIMIT

    def chunk(append: bool) -> ServerEvent:
        update = {"taskId": "t", "append": append, "artifact": {"artifactId": "a", "parts": [{"text": "w" * 100}]}}
        return ServerEvent(None, json.dumps({"jsonrpc": "2.0", "id": "1", "result": {"artifactUpdate": update}}))

    fed = [decoder.feed(chunk(append=index > 0)) for index in range(LIMIT // 400)]  # well under the limit
    assert len(fed[-1][0].artifact.content) == 100 * len(fed)
    with pytest.raises(errors.EventTooLargeError, match="artifact a grew past") as info:
        for _ in range(LIMIT // 100):
            decoder.feed(chunk(append=True))
    assert info.value.task_id == "t" and isinstance(info.value, errors.StreamDisconnectedError)  # never a failure


# -- the connection's knobs ---------------------------------------------------------------------------------------


def test_the_limits_are_connection_extras_with_defaults_and_checked_values():
    from airflow_agentvault.hooks.agentvault import ConnectionConfigError, settings_from_connection
    from airflow_agentvault.protocol.exchange import DEFAULT_MAX_ANSWER_BYTES, DEFAULT_MAX_EVENT_BYTES

    default = settings_from_connection("c", RPC, None, None, {})
    assert (default.max_answer_bytes, default.max_event_bytes) == (DEFAULT_MAX_ANSWER_BYTES, DEFAULT_MAX_EVENT_BYTES)
    chosen = settings_from_connection("c", RPC, None, None, {"max_answer_bytes": "2048", "max_event_bytes": 512})
    assert (chosen.max_answer_bytes, chosen.max_event_bytes) == (2048, 512)
    for bad in ("0", "-1", "1.5", "lots"):
        with pytest.raises(ConnectionConfigError, match="extra 'max_event_bytes' must be a positive whole number"):
            settings_from_connection("c", RPC, None, None, {"max_event_bytes": bad})
