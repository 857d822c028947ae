"""The fault proxy against the real reference agent: it passes traffic through unchanged, and each
fault is what a client sees on the wire.

Plain ``requests`` + ``sseclient`` (not the project's client), and a raw socket where the bytes and
the way a connection ended matter (clean end, FIN or reset). Every wait is bounded: HTTP and socket
timeouts, and :meth:`FaultProxy.wait_for`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import sseclient

from agentvault_stack.testing.fault_proxy import (
    FaultProxy,
    Match,
    _sse_blocks,
    cut_after_events,
    cut_mid_event,
    damage_json,
    delay_visibility,
    forget_tasks,
    inject_unknown_event,
    latency,
    reset_after_request,
    reset_before_request,
    stall,
    status,
    status_after_upstream,
    wrong_content_type,
)

from faults.servers import a2a_sdk_agent, free_port, reference_agent

pytestmark = pytest.mark.integration

TIMEOUT = (2.0, 10.0)  # connect, read
# Each task streams WORKING, three task_message events, one artifact and COMPLETED (~0.4 s).
STREAMING_TASK = {"work_seconds": 0.4, "tokens": 3}
NOT_FOUND = -32001


# -- the agent and the proxy -------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent() -> Iterator[str]:
    """A reference agent process (``python -m agentvault_stack.agent``) on a free port; its base URL."""
    with reference_agent() as base_url:
        yield base_url


@pytest.fixture
def proxy(agent: str) -> Iterator[FaultProxy]:
    with FaultProxy(agent) as running:
        yield running
    assert running.errors == []


# -- helpers -----------------------------------------------------------------------------------


def rpc_body(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": f"req-{method}"}


def rpc(base_url: str, method: str, params: dict[str, Any], **kwargs: Any) -> requests.Response:
    return requests.post(f"{base_url}/a2a/", json=rpc_body(method, params), timeout=TIMEOUT, **kwargs)


def send(base_url: str, overrides: dict[str, Any] | None = None) -> str:
    message = {"role": "user", "parts": [{"type": "text", "content": "hello proxy"}]}
    message["metadata"] = {"reference_agent": overrides or STREAMING_TASK}
    reply = rpc(base_url, "tasks/send", {"message": message}).json()
    return reply["result"]["id"]


def get_task(base_url: str, task_id: str) -> dict[str, Any]:
    return rpc(base_url, "tasks/get", {"id": task_id}).json()


def subscribe(base_url: str, task_id: str, timeout: Any = TIMEOUT) -> requests.Response:
    return requests.post(
        f"{base_url}/a2a/",
        json=rpc_body("tasks/sendSubscribe", {"id": task_id}),
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=timeout,
    )


def read_events(response: requests.Response) -> list[tuple[str, str]]:
    """(event, data) of every event until the stream ends."""
    return [(event.event, event.data) for event in sseclient.SSEClient(response).events()]


def agent_stats(agent: str) -> dict[str, Any]:
    return requests.get(f"{agent}/_control/stats", timeout=TIMEOUT).json()


@dataclass
class RawReply:
    """What a raw socket received, and how the connection ended (``eof`` or ``reset``)."""

    head: str
    body: bytes
    ended: str

    def dechunked(self) -> tuple[bytes, bool]:
        """The chunked body's data, and whether the terminating chunk arrived."""
        raw, data = self.body, b""
        while True:
            size_line, sep, rest = raw.partition(b"\r\n")
            if not sep:
                return data, False
            size = int(size_line, 16)
            if size == 0:
                return data, True
            data += rest[:size]
            if len(rest) < size + 2:
                return data, False
            raw = rest[size + 2 :]


def raw_post(url: str, payload: dict[str, Any], timeout: float = 5.0) -> RawReply:
    """POST with a plain socket and read until the server ends the connection."""
    parts = urlsplit(url)
    body = json.dumps(payload).encode()
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    received, ended = b"", "eof"
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            ended = "reset"
    head, _, rest = received.partition(b"\r\n\r\n")
    return RawReply(head.decode("latin-1"), rest, ended)


def raw_subscribe(base_url: str, task_id: str) -> RawReply:
    return raw_post(f"{base_url}/a2a/", rpc_body("tasks/sendSubscribe", {"id": task_id}))


# -- pass-through --------------------------------------------------------------------------------


def test_passes_send_get_and_stream_through(agent: str, proxy: FaultProxy) -> None:
    task_id = send(proxy.url)
    response = subscribe(proxy.url, task_id)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    events = read_events(response)
    assert [name for name, _ in events][-2:] == ["task_artifact", "task_status"]
    assert all(json.loads(data)["taskId"] == task_id for _, data in events)
    assert json.loads(events[-1][1])["state"] == "COMPLETED"

    reply = get_task(proxy.url, task_id)
    assert reply["result"]["state"] == "COMPLETED"
    assert reply == get_task(agent, task_id)
    card = requests.get(f"{proxy.url}/agent-card.json", timeout=TIMEOUT)
    assert card.status_code == 200 and card.json()["name"]

    assert [tuple(seen) for seen in proxy.requests] == [
        ("POST", "/a2a/", "tasks/send", None),
        ("POST", "/a2a/", "tasks/sendSubscribe", None),
        ("POST", "/a2a/", "tasks/get", None),
        ("GET", "/agent-card.json", None, None),
    ]
    assert proxy.created_task_ids == [task_id]


def test_a_clean_stream_ends_with_the_terminating_chunk(proxy: FaultProxy) -> None:
    reply = raw_subscribe(proxy.url, send(proxy.url))
    assert reply.head.startswith("HTTP/1.1 200 ")
    assert "Connection: close" in reply.head
    data, complete = reply.dechunked()
    assert complete and reply.ended == "eof"
    assert data.endswith(b"\n\n") and b'"state":"COMPLETED"' in data


# -- stream faults -----------------------------------------------------------------------------


def test_cut_after_events_clean(proxy: FaultProxy) -> None:
    fault = proxy.add(cut_after_events(2))
    events = read_events(subscribe(proxy.url, send(proxy.url)))  # ends without an error
    assert [name for name, _ in events] == ["task_status", "task_message"]
    assert fault.applied == 1

    raw = raw_subscribe(proxy.url, send(proxy.url))  # times=1: this one passes
    assert raw.dechunked()[1]
    assert b'"state":"COMPLETED"' in raw.dechunked()[0]


def test_cut_after_events_clean_on_the_wire(proxy: FaultProxy) -> None:
    proxy.add(cut_after_events(2))
    reply = raw_subscribe(proxy.url, send(proxy.url))
    data, complete = reply.dechunked()
    assert complete and reply.ended == "eof"
    assert data.count(b"\n\n") == 2 and data.endswith(b"\n\n")


def test_cut_after_events_abrupt_resets(proxy: FaultProxy) -> None:
    proxy.add(cut_after_events(2, abrupt=True, times=2))
    reply = raw_subscribe(proxy.url, send(proxy.url))
    data, complete = reply.dechunked()
    assert reply.ended == "reset" and not complete
    assert data.count(b"\n\n") == 2 and data.endswith(b"\n\n")

    received = []
    with pytest.raises(requests.exceptions.RequestException):
        for event in sseclient.SSEClient(subscribe(proxy.url, send(proxy.url))).events():
            received.append(event.event)
    assert received == ["task_status", "task_message"]


def test_cut_mid_event_sends_half_an_event_then_resets(proxy: FaultProxy) -> None:
    proxy.add(cut_mid_event(2))
    reply = raw_subscribe(proxy.url, send(proxy.url))
    data, complete = reply.dechunked()
    assert reply.ended == "reset" and not complete
    *whole, partial = data.split(b"\n\n")
    assert len(whole) == 2
    assert partial.startswith(b"event: task_message\ndata: {")
    with pytest.raises(ValueError):
        json.loads(partial.split(b"data: ", 1)[1])


def test_stall_after_an_event_meets_the_read_timeout(proxy: FaultProxy) -> None:
    fault = proxy.add(stall(30.0, after_events=1))
    response = subscribe(proxy.url, send(proxy.url), timeout=(2.0, 0.5))
    received = []
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError, match="timed out"):
        for event in sseclient.SSEClient(response).events():
            received.append(event.event)
    assert received == ["task_status"]
    assert time.monotonic() - started < 5.0
    assert fault.applied == 1


def test_stall_before_the_head(proxy: FaultProxy) -> None:
    proxy.add(stall(30.0, head=False, when=Match(rpc_method="tasks/get")))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{proxy.url}/a2a/", json=rpc_body("tasks/get", {"id": "x"}), timeout=(2.0, 0.5))


def test_stop_is_fast_while_a_stall_is_in_progress(agent: str) -> None:
    proxy = FaultProxy(agent).start()
    try:
        fault = proxy.add(stall(60.0, when=Match(rpc_method="tasks/get")))
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5.0) as sock:
            body = json.dumps(rpc_body("tasks/get", {"id": "x"})).encode()
            sock.sendall(f"POST /a2a/ HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            received = b""
            while b"\r\n\r\n" not in received:  # the head comes, then nothing (socket timeout 5 s)
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"\r\n\r\n")
            assert fault.applied == 1
            started = time.monotonic()
            proxy.stop()
            assert time.monotonic() - started < 1.5
            with pytest.raises(ConnectionResetError):
                sock.recv(65536)
    finally:
        proxy.stop()


def test_damage_json_breaks_one_event_and_keeps_the_framing(proxy: FaultProxy) -> None:
    proxy.add(damage_json(2))
    events = read_events(subscribe(proxy.url, send(proxy.url)))
    assert [name for name, _ in events][:2] == ["task_status", "task_message"]
    assert events[-1][0] == "task_status" and json.loads(events[-1][1])["state"] == "COMPLETED"
    with pytest.raises(ValueError):
        json.loads(events[1][1])
    for index, (_, data) in enumerate(events):
        if index != 1:
            json.loads(data)


def test_inject_unknown_event_with_a_name(proxy: FaultProxy) -> None:
    proxy.add(inject_unknown_event(1))
    events = read_events(subscribe(proxy.url, send(proxy.url)))
    assert events[0] == ("proxy_heartbeat", '{"x":1}')
    assert events[1][0] == "task_status"
    assert json.loads(events[-1][1])["state"] == "COMPLETED"


def test_inject_unknown_event_data_only(proxy: FaultProxy) -> None:
    proxy.add(inject_unknown_event(2, name=None, data='{"kind":"mystery","value":7}'))
    events = read_events(subscribe(proxy.url, send(proxy.url)))
    assert events[1] == ("message", '{"kind":"mystery","value":7}')
    assert [events[0][0], events[2][0]] == ["task_status", "task_message"]


def test_wrong_content_type(proxy: FaultProxy) -> None:
    proxy.add(wrong_content_type("text/html", when=Match(rpc_method="tasks/get")))
    proxy.add(wrong_content_type(when=Match(stream=True)))
    reply = rpc(proxy.url, "tasks/get", {"id": "nope"})
    assert reply.headers["content-type"] == "text/html"
    assert reply.json()["error"]["code"] == NOT_FOUND  # the agent's answer, unchanged

    stream = subscribe(proxy.url, send(proxy.url))
    assert stream.headers["content-type"] == "application/json"
    assert stream.text.startswith("event: task_status\ndata: {")


# -- gateway faults ----------------------------------------------------------------------------


def test_status_burst_with_retry_after_never_reaches_the_agent(agent: str, proxy: FaultProxy) -> None:
    task_id = send(proxy.url)
    before = agent_stats(agent)["requests"].get("tasks/get", 0)
    proxy.add(status(503, retry_after=2, times=2, when=Match(rpc_method="tasks/get")))
    answers = [rpc(proxy.url, "tasks/get", {"id": task_id}) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["retry-after"] == "2"
    assert answers[2].json()["result"]["id"] == task_id
    assert agent_stats(agent)["requests"]["tasks/get"] == before + 1
    assert [seen.fault for seen in proxy.requests[-3:]] == ["status", "status", None]


@pytest.mark.parametrize("code", [429, 502, 504])
def test_status_with_a_body_and_headers(proxy: FaultProxy, code: int) -> None:
    proxy.add(status(code, body=b'{"detail":"busy"}', content_type="application/json", headers={"X-Why": "fault"}))
    reply = rpc(proxy.url, "tasks/get", {"id": "x"})
    assert reply.status_code == code
    assert reply.json() == {"detail": "busy"}
    assert reply.headers["x-why"] == "fault"


def test_status_after_upstream_the_agent_created_the_task(agent: str, proxy: FaultProxy) -> None:
    tasks_before = agent_stats(agent)["tasks"]
    proxy.add(status_after_upstream(504, when=Match(rpc_method="tasks/send")))
    message = {"role": "user", "parts": [{"type": "text", "content": "ambiguous"}]}
    reply = rpc(proxy.url, "tasks/send", {"message": message})
    assert reply.status_code == 504
    assert agent_stats(agent)["tasks"] == tasks_before + 1
    [task_id] = proxy.created_task_ids
    assert get_task(proxy.url, task_id)["result"]["id"] == task_id


def test_reset_before_request_the_agent_never_sees_it(agent: str, proxy: FaultProxy) -> None:
    tasks_before = agent_stats(agent)["tasks"]
    proxy.add(reset_before_request(when=Match(rpc_method="tasks/send")))
    with pytest.raises(requests.exceptions.ConnectionError):
        send(proxy.url)
    assert agent_stats(agent)["tasks"] == tasks_before
    assert proxy.created_task_ids == []
    assert tuple(proxy.requests[-1]) == ("POST", "/a2a/", "tasks/send", "reset_before_request")


def test_reset_after_request_the_agent_has_the_task(agent: str, proxy: FaultProxy) -> None:
    tasks_before = agent_stats(agent)["tasks"]
    proxy.add(reset_after_request(when=Match(rpc_method="tasks/send")))
    with pytest.raises(requests.exceptions.ConnectionError):
        send(proxy.url)
    assert agent_stats(agent)["tasks"] == tasks_before + 1
    [task_id] = proxy.created_task_ids
    assert get_task(proxy.url, task_id)["result"]["id"] == task_id


def test_latency_before_forwarding(proxy: FaultProxy) -> None:
    proxy.add(latency(0.3))
    started = time.monotonic()
    assert rpc(proxy.url, "tasks/get", {"id": "x"}).json()["error"]["code"] == NOT_FOUND
    assert time.monotonic() - started >= 0.3
    assert proxy.requests[-1].fault == "latency"


def test_skip_and_path_match(proxy: FaultProxy) -> None:
    fault = proxy.add(status(500, when=Match(path=r"^/agent-card\.json$", http_method="GET"), skip=1))
    codes = [requests.get(f"{proxy.url}/agent-card.json", timeout=TIMEOUT).status_code for _ in range(3)]
    assert codes == [200, 500, 200]
    assert (fault.matched, fault.applied) == (3, 1)


def test_upstream_unreachable_is_a_502() -> None:
    port = free_port()
    with FaultProxy(f"http://127.0.0.1:{port}") as proxy:
        assert rpc(proxy.url, "tasks/get", {"id": "x"}).status_code == 502


# -- agent-side faults -------------------------------------------------------------------------


def test_forget_tasks_switch(agent: str, proxy: FaultProxy) -> None:
    old = send(proxy.url, {"work_seconds": 0})
    assert get_task(proxy.url, old)["result"]["id"] == old
    proxy.forget_tasks()
    reply = get_task(proxy.url, old)
    assert reply == {"jsonrpc": "2.0", "error": {"code": NOT_FOUND, "message": f"Task not found: {old}"},
                     "id": "req-tasks/get"}
    assert get_task(agent, old)["result"]["id"] == old  # only the proxy forgot
    new = send(proxy.url, {"work_seconds": 0})
    assert get_task(proxy.url, new)["result"]["id"] == new
    assert proxy.created_task_ids == [old, new]


def test_forget_tasks_at_a_chosen_request(proxy: FaultProxy) -> None:
    task_id = send(proxy.url, {"work_seconds": 0})
    proxy.add(forget_tasks(when=Match(rpc_method="tasks/sendSubscribe")))
    assert get_task(proxy.url, task_id)["result"]["id"] == task_id
    assert subscribe(proxy.url, task_id).json()["error"]["code"] == NOT_FOUND
    assert get_task(proxy.url, task_id)["error"]["code"] == NOT_FOUND


def test_delay_visibility_for_a_count_of_lookups(proxy: FaultProxy) -> None:
    earlier = send(proxy.url, {"work_seconds": 0})
    proxy.add(delay_visibility(2))
    task_id = send(proxy.url, {"work_seconds": 0})
    replies = [get_task(proxy.url, task_id) for _ in range(3)]
    assert [r.get("error", {}).get("code") for r in replies] == [NOT_FOUND, NOT_FOUND, None]
    assert replies[2]["result"]["id"] == task_id
    assert get_task(proxy.url, earlier)["result"]["id"] == earlier  # created before the rule


def test_delay_visibility_for_a_time(proxy: FaultProxy) -> None:
    proxy.add(delay_visibility(seconds=60.0, when=Match(rpc_method="tasks/get")))
    task_id = send(proxy.url, {"work_seconds": 0})
    assert get_task(proxy.url, task_id)["error"]["code"] == NOT_FOUND
    assert get_task(proxy.url, task_id)["error"]["code"] == NOT_FOUND
    assert read_events(subscribe(proxy.url, task_id))  # not matched by `when`: visible
    other = send(proxy.url, {"work_seconds": 0})  # times=1: one task only
    assert get_task(proxy.url, other)["result"]["id"] == other


def test_not_found_in_the_a2a_dialects(agent: str) -> None:
    with FaultProxy(agent, dialect="a2a-jsonrpc") as proxy:
        task_id = send(proxy.url, {"work_seconds": 0})
        proxy.forget_tasks()
        reply = requests.post(proxy.url, json={"jsonrpc": "2.0", "id": 5, "method": "GetTask",
                                               "params": {"id": task_id}}, timeout=TIMEOUT)
        assert reply.status_code == 200
        assert reply.json() == {"jsonrpc": "2.0", "error": {"code": NOT_FOUND, "message": "Task not found"}, "id": 5}

    with FaultProxy(agent, dialect="a2a-rest") as proxy:
        task_id = send(proxy.url, {"work_seconds": 0})
        proxy.forget_tasks()
        for answer in (
            requests.get(f"{proxy.url}/tasks/{task_id}", timeout=TIMEOUT),
            requests.post(f"{proxy.url}/tasks/{task_id}:subscribe", timeout=TIMEOUT),
        ):
            assert answer.status_code == 404
            error = answer.json()["error"]
            assert (error["code"], error["status"], error["message"]) == (404, "NOT_FOUND", "Task not found")
            assert error["details"][0]["reason"] == "TASK_NOT_FOUND"


# -- an A2A server (a2a-sdk 1.3.0): CRLF-framed events, task ids in A2A shapes, the REST binding --


@pytest.fixture(scope="module")
def a2a_agent() -> Iterator[str]:
    """``tests/interop/a2a_v1_agent.py`` on a free port, as ``tests/interop/servers.py`` starts it."""
    with a2a_sdk_agent() as base_url:
        yield base_url


def a2a_message(text: str = "hello sleep=0.1 chunks=3") -> dict[str, Any]:
    return {"messageId": f"m-{time.monotonic_ns()}", "role": "ROLE_USER", "parts": [{"text": text}]}


def test_a2a_jsonrpc_stream_cut_and_forgotten_task(a2a_agent: str) -> None:
    headers = {"A2A-Version": "1.0", "Accept": "text/event-stream"}
    with FaultProxy(a2a_agent, dialect="a2a-jsonrpc") as proxy:
        proxy.add(cut_after_events(2, when=Match(rpc_method="SendStreamingMessage")))
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": {"message": a2a_message()}}
        stream = requests.post(proxy.url, json=body, headers=headers, stream=True, timeout=TIMEOUT)
        events = [json.loads(data) for _, data in read_events(stream)]
        assert len(events) == 2
        task_id = events[0]["result"]["task"]["id"]
        assert proxy.created_task_ids == [task_id]

        get = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
        assert requests.post(proxy.url, json=get, headers=headers, timeout=TIMEOUT).json()["result"]["id"] == task_id
        proxy.forget_tasks()
        reply = requests.post(proxy.url, json=get, headers=headers, timeout=TIMEOUT).json()
        assert reply["error"] == {"code": NOT_FOUND, "message": "Task not found"}
        assert proxy.errors == []


def test_a2a_rest_delayed_visibility(a2a_agent: str) -> None:
    headers = {"A2A-Version": "1.0"}
    with FaultProxy(a2a_agent, dialect="a2a-rest") as proxy:
        proxy.add(delay_visibility(1))
        sent = requests.post(f"{proxy.url}/rest/message:send", json={"message": a2a_message()}, headers=headers,
                             timeout=TIMEOUT)
        task_id = sent.json()["task"]["id"]
        assert proxy.created_task_ids == [task_id]
        first, second = (requests.get(f"{proxy.url}/rest/tasks/{task_id}", headers=headers, timeout=TIMEOUT)
                         for _ in range(2))
        assert first.status_code == 404 and first.json()["error"]["status"] == "NOT_FOUND"
        assert second.status_code == 200 and second.json()["id"] == task_id
        assert proxy.errors == []


# -- async use, and the event splitter ---------------------------------------------------------


async def test_async_context_manager(agent: str) -> None:
    async with FaultProxy(agent) as proxy:
        proxy.add(status(503, when=Match(rpc_method="tasks/get")))
        async with httpx.AsyncClient(timeout=5.0) as client:
            first = await client.post(f"{proxy.url}/a2a/", json=rpc_body("tasks/get", {"id": "x"}))
            second = await client.post(f"{proxy.url}/a2a/", json=rpc_body("tasks/get", {"id": "x"}))
    assert (first.status_code, second.json()["error"]["code"]) == (503, NOT_FOUND)


async def _blocks(*pieces: bytes) -> list[bytes]:
    async def chunks():  # type: ignore[no-untyped-def]
        for piece in pieces:
            yield piece
            await asyncio.sleep(0)

    return [block async for block in _sse_blocks(chunks())]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
async def test_events_are_split_whatever_the_line_ends(end: bytes) -> None:
    stream = b"data: {}" + end + end + b": ping" + end + end + b"event: a" + end + b"data: 1" + end + end + b"data: par"
    pieces = [stream[i : i + 3] for i in range(0, len(stream), 3)]  # CRLF split across pieces too
    assert await _blocks(*pieces) == [
        b"data: {}" + end + end,
        b": ping" + end + end,
        b"event: a" + end + b"data: 1" + end + end,
        b"data: par",
    ]
