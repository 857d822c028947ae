"""The synchronous client against the captured wire bytes (HTTP mocked with requests-mock)."""

from __future__ import annotations

import gzip
import io
import json

import pytest
import requests
import urllib3

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.auth import ApiKeyAuth
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.exchange import origin
from airflow_agentvault.protocol.models import Message, TaskArtifactEvent, TaskMessageEvent, TaskState, TaskStatusEvent

from wire import capture_body

RPC = "http://agent.test/a2a/"
JSON = {"Content-Type": "application/json"}
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


@pytest.fixture
def client():
    return AgentClient(RPC, connect_timeout=1, read_timeout=2)


def test_send_returns_task_id_and_posts_the_message(requests_mock, client):
    requests_mock.post(RPC, content=capture_body("01_tasks_send.response.txt"), headers=JSON)
    message = Message(role="user", parts=[{"type": "text", "content": "hello"}, {"type": "data", "content": {"topic": "x"}}])
    assert client.send(message) == "slow-a4beec8c"
    body = requests_mock.last_request.json()
    assert body["method"] == "tasks/send"
    assert body["params"]["message"]["parts"][0] == {"type": "text", "content": "hello"}
    assert requests_mock.last_request.timeout == (1, 2)


def test_get_parses_the_captured_task(requests_mock, client):
    requests_mock.post(RPC, content=capture_body("04_tasks_get_final.response.txt"), headers=JSON)
    task = client.get("slow-a4beec8c")
    assert task.state is TaskState.COMPLETED
    assert task.artifacts[0].content == {"answer": 42}
    assert task.last_agent_text() == "half way"


def test_unknown_task_is_task_not_found_naming_url_method_and_task(requests_mock, client):
    requests_mock.post(RPC, content=capture_body("05_tasks_get_unknown.response.txt"), headers=JSON)
    with pytest.raises(errors.TaskNotFoundError) as info:
        client.get("nope")
    message = str(info.value)
    assert "Task not found: nope" in message and RPC in message and "tasks/get" in message and "task nope" in message
    assert info.value.retryable


def test_500_text_plain_on_get_is_retryable_task_not_found(requests_mock, client):
    requests_mock.post(RPC, status_code=500, text="Internal Server Error", headers={"Content-Type": "text/plain"})
    with pytest.raises(errors.TaskNotFoundError):
        client.get("nope")


def test_401_is_not_authorised_and_never_quotes_the_key(requests_mock):
    secret = "sk-very-secret-1234"
    requests_mock.post(RPC, status_code=401, json={"detail": f"bad api key {secret}"}, headers=JSON)
    client = AgentClient(RPC, auth=ApiKeyAuth(secret))
    with pytest.raises(errors.NotAuthorizedError) as info:
        client.get("t1")
    assert secret not in str(info.value)
    assert requests_mock.last_request.headers["X-Api-Key"] == secret


def test_custom_api_key_header(requests_mock):
    requests_mock.post(RPC, content=capture_body("05_tasks_get_unknown.response.txt"), headers=JSON)
    with pytest.raises(errors.TaskNotFoundError):
        AgentClient(RPC, auth=ApiKeyAuth("k", header="X-Agent-Key")).get("nope")
    assert requests_mock.last_request.headers["X-Agent-Key"] == "k"


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"text": "not json", "headers": JSON}, "malformed JSON"),
        ({"text": "<html>", "headers": {"Content-Type": "text/html"}}, "content type 'text/html'"),
        ({"json": {"jsonrpc": "2.0", "id": 1}}, "neither 'result' nor 'error'"),
        ({"json": {"jsonrpc": "2.0", "result": {"state": "WORKING"}, "id": 1}}, "field 'id': Field required"),
        ({"json": {"jsonrpc": "2.0", "result": {"id": "t", "state": "working"}, "id": 1}}, "field 'state'"),
        ({"content": capture_body("08_bad_method.response.txt"), "headers": JSON}, "Method not found"),
        ({"status_code": 404, "text": "nf"}, "HTTP 404"),
    ],
)
def test_protocol_violations_quote_the_problem(requests_mock, client, kwargs, expected):
    if "json" in kwargs:
        kwargs = {**kwargs, "headers": JSON}
    requests_mock.post(RPC, **kwargs)
    with pytest.raises(errors.ProtocolViolationError, match=expected) as info:
        client.get("t")
    assert not info.value.retryable


def test_extra_fields_are_tolerated(requests_mock, client):
    body = json.loads(capture_body("04_tasks_get_final.response.txt"))
    body["result"]["futureField"] = {"x": 1}
    body["result"]["messages"][0]["newThing"] = True
    requests_mock.post(RPC, json=body, headers=JSON)
    assert client.get("slow-a4beec8c").state is TaskState.COMPLETED


@pytest.mark.parametrize("exc", [requests.ConnectionError("Connection refused"), requests.ConnectTimeout()])
def test_connection_problems_are_agent_unreachable(requests_mock, client, exc):
    requests_mock.post(RPC, exc=exc)
    with pytest.raises(errors.AgentUnreachableError) as info:
        client.get("t")
    assert info.value.retryable


def test_subscribe_decodes_the_captured_stream(requests_mock, client):
    requests_mock.post(RPC, content=capture_body("03_sse.raw.txt"), headers=SSE)
    events = list(client.subscribe("slow-a4beec8c"))
    assert [type(e) for e in events] == [TaskStatusEvent, TaskMessageEvent, TaskArtifactEvent, TaskStatusEvent]
    assert events[-1].state is TaskState.COMPLETED
    assert requests_mock.last_request.headers["Accept"] == "text/event-stream"
    assert requests_mock.last_request.json()["method"] == "tasks/sendSubscribe"


def test_subscribe_decodes_a_compressed_stream(requests_mock, client):
    body = gzip.compress(capture_body("03_sse.raw.txt"))
    requests_mock.post(RPC, content=body, headers={**SSE, "Content-Encoding": "gzip"})
    events = list(client.subscribe("slow-a4beec8c"))
    assert [type(e) for e in events] == [TaskStatusEvent, TaskMessageEvent, TaskArtifactEvent, TaskStatusEvent]


class _BreaksAfter(io.RawIOBase):
    """A response body that gives some bytes, then loses the connection."""

    def __init__(self, first: bytes) -> None:
        self.left = [first]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.left:
            raise ConnectionResetError("connection reset")
        data = self.left.pop()
        buffer[:len(data)] = data
        return len(data)


def test_subscribe_broken_connection_is_a_disconnect(requests_mock, client):
    first = capture_body("03_sse.raw.txt").split(b"event: task_message")[0]
    raw = urllib3.HTTPResponse(body=io.BufferedReader(_BreaksAfter(first)), headers=SSE, status=200,
                               preload_content=False)
    requests_mock.post(RPC, raw=raw)
    with pytest.raises(errors.StreamDisconnectedError, match=r"stream broke after 1 events \(ProtocolError\)"):
        list(client.subscribe("slow-a4beec8c"))


def test_subscribe_json_answer_is_task_not_found_not_an_empty_stream(requests_mock, client):
    requests_mock.post(RPC, content=capture_body("06_sse_unknown.response.txt"), headers=JSON)
    with pytest.raises(errors.TaskNotFoundError, match="tasks/sendSubscribe"):
        list(client.subscribe("nope"))


def test_subscribe_stream_without_terminal_state_is_a_disconnect(requests_mock, client):
    body = capture_body("03_sse.raw.txt").split(b"event: task_artifact")[0]
    requests_mock.post(RPC, content=body, headers=SSE)
    seen = []
    with pytest.raises(errors.StreamDisconnectedError, match="after 2 events"):
        for event in client.subscribe("slow-a4beec8c"):
            seen.append(event)
    assert len(seen) == 2


def test_subscribe_failed_task_stream_ends_with_failed_status(requests_mock, client):
    requests_mock.post(RPC, content=capture_body("14_failed_task.sse.raw.txt"), headers=SSE)
    events = list(client.subscribe("slow-7810e8a8"))
    assert events[-1].state is TaskState.FAILED
    assert events[-1].message_text == "slow agent failed on purpose"


@pytest.mark.parametrize(
    "body, error",
    [
        # an unknown event is skipped; here the stream then ends without a terminal state
        (b"event: surprise\ndata: {}\n\n", errors.StreamDisconnectedError),
        # a damaged event ends the stream as a disconnect (the task is read with tasks/get anyway)
        (b"event: task_status\ndata: {not json\n\n", errors.StreamDisconnectedError),
        (b'event: task_status\ndata: {"taskId": "t", "state": "\xff"}\n\n', errors.StreamDisconnectedError),  # not UTF-8
        (b'event: error\ndata: {"error": -32001, "message": "Task not found: t"}\n\n', errors.TaskNotFoundError),
    ],
)
def test_subscribe_bad_events(requests_mock, client, body, error):
    requests_mock.post(RPC, content=body, headers=SSE)
    with pytest.raises(error):
        list(client.subscribe("t"))


def test_subscribe_wrong_content_type(requests_mock, client):
    requests_mock.post(RPC, text="hello", headers={"Content-Type": "text/plain"})
    with pytest.raises(errors.StreamDisconnectedError, match="content type 'text/plain' instead of an event stream"):
        list(client.subscribe("t"))


def test_subscribe_uses_the_given_read_timeout(requests_mock, client):
    requests_mock.post(RPC, content=capture_body("03_sse.raw.txt"), headers=SSE)
    list(client.subscribe("t", read_timeout=900))
    assert requests_mock.last_request.timeout == (1, 900)


def test_cancel_finished_task_is_success_false(requests_mock, client):
    requests_mock.post(RPC, content=capture_body("07_cancel_done.response.txt"), headers=JSON)
    assert client.cancel("slow-a4beec8c").success is False


def test_errors_survive_pickling():
    import pickle

    err = errors.TaskFailedError("boom", agent_message="why", agent_url=RPC, method="tasks/get", task_id="t")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is errors.TaskFailedError and copy.agent_message == "why" and str(copy) == str(err)


def test_redact_url_drops_userinfo_and_query():
    assert errors.redact_url("https://user:pw@host:8443/a2a/?key=s#x") == "https://host:8443/a2a/"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://agent.test:8000/a2a/?k=v#f", "http://agent.test:8000"),
    ("HTTPS://User:Pw@Agent.TEST/x", "https://agent.test"),  # no user info, no case
    ("https://agent.test:443/x", "https://agent.test"),  # the default port is the same origin
    ("http://agent.test:80", "http://agent.test"),
    ("https://agent.test:80/", "https://agent.test:80"),  # another scheme's default is a real port
    ("http://agent.test:/a2a/", "http://agent.test"),
    ("http://[::1]:8080/a2a/", "http://[::1]:8080"),
    ("http://[::1]:80/", "http://[::1]"),
    ("http://u@agent.test:99999/", "http://agent.test:99999"),  # a port out of range stays as written
])
def test_origin(url, expected):
    assert origin(url) == expected


def test_a_redirect_to_the_default_port_is_the_same_origin(requests_mock):
    requests_mock.post("https://agent.test/a2a", status_code=307, headers={"Location": "https://AGENT.test:443/a2a/"})
    requests_mock.post("https://agent.test:443/a2a/", content=capture_body("04_tasks_get_final.response.txt"),
                       headers=JSON)
    assert AgentClient("https://agent.test/a2a", auth=ApiKeyAuth("sk-key")).get("slow-a4beec8c").state is \
        TaskState.COMPLETED


def test_same_origin_redirect_is_followed_with_the_method(requests_mock):
    requests_mock.post("http://agent.test/a2a", status_code=307, headers={"Location": "http://agent.test/a2a/"})
    requests_mock.post(RPC, content=capture_body("04_tasks_get_final.response.txt"), headers=JSON)
    assert AgentClient("http://agent.test/a2a").get("slow-a4beec8c").state is TaskState.COMPLETED


def test_a_redirect_to_another_origin_is_not_followed_and_keeps_the_key(requests_mock):
    requests_mock.post(RPC, status_code=307, headers={"Location": "https://evil.example/collect"})
    collector = requests_mock.post("https://evil.example/collect", json={})
    with pytest.raises(errors.ProtocolViolationError, match="redirected to another origin"):
        AgentClient(RPC, auth=ApiKeyAuth("sk-key")).get("t")
    assert not collector.called


def test_an_http_error_quotes_the_agents_own_message_and_code(requests_mock):
    requests_mock.get("http://agent.test/agent-card.json", status_code=400,
                      json={"code": -32009, "message": "x", "error": {"code": -32009, "message":
                            "AgentCard must have at least one interface with a protocol version in [0.3, 1.0)."}})
    with pytest.raises(errors.ProtocolViolationError) as info:
        AgentClient(RPC).fetch_card("http://agent.test/agent-card.json")
    assert "AgentCard must have at least one interface" in str(info.value) and "code -32009" in str(info.value)
    assert "method GET agent card" in str(info.value)


def test_an_authentication_error_body_is_never_quoted(requests_mock):
    requests_mock.post(RPC, status_code=401, json={"error": {"message": "bad key sk-secret-123"}})
    with pytest.raises(errors.NotAuthorizedError) as info:
        AgentClient(RPC).get("t")
    assert "sk-secret-123" not in str(info.value)
