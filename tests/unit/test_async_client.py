"""The async client against the captured wire bytes (HTTP mocked with respx): the cases of test_client.py."""

from __future__ import annotations

import json

import httpx
import pytest

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.auth import ApiKeyAuth
from airflow_agentvault.protocol.models import Message, TaskArtifactEvent, TaskMessageEvent, TaskState, TaskStatusEvent

from wire import capture_body

RPC = "http://agent.test/a2a/"
JSON = {"Content-Type": "application/json"}
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


@pytest.fixture
async def client():
    async with AsyncAgentClient(RPC, connect_timeout=1, read_timeout=2) as client:
        yield client


def answer(respx_mock, *args, **kwargs):
    """Route the endpoint to one response; return the route (its calls hold the requests)."""
    return respx_mock.post(RPC).mock(return_value=httpx.Response(*args, **kwargs))


def sent(route) -> dict:
    return json.loads(route.calls.last.request.content)


async def collect(events) -> list:
    return [event async for event in events]


def timeouts(route) -> tuple[float, float]:
    timeout = route.calls.last.request.extensions["timeout"]
    return timeout["connect"], timeout["read"]


async def test_send_returns_task_id_and_posts_the_message(respx_mock, client):
    route = answer(respx_mock, 200, content=capture_body("01_tasks_send.response.txt"), headers=JSON)
    message = Message(role="user",
                      parts=[{"type": "text", "content": "hello"}, {"type": "data", "content": {"topic": "x"}}])
    assert await client.send(message) == "slow-a4beec8c"
    body = sent(route)
    assert body["method"] == "tasks/send"
    assert body["params"]["message"]["parts"][0] == {"type": "text", "content": "hello"}
    assert timeouts(route) == (1, 2)


async def test_follow_up_message_names_the_task(respx_mock, client):
    route = answer(respx_mock, 200, content=capture_body("01_tasks_send.response.txt"), headers=JSON)
    await client.send(Message(role="user", parts=[{"type": "text", "content": "more"}]), task_id="slow-a4beec8c")
    assert sent(route)["params"]["id"] == "slow-a4beec8c"


async def test_get_parses_the_captured_task(respx_mock, client):
    answer(respx_mock, 200, content=capture_body("04_tasks_get_final.response.txt"), headers=JSON)
    task = await client.get("slow-a4beec8c")
    assert task.state is TaskState.COMPLETED
    assert task.artifacts[0].content == {"answer": 42}
    assert task.last_agent_text() == "half way"


async def test_unknown_task_is_task_not_found_naming_url_method_and_task(respx_mock, client):
    answer(respx_mock, 200, content=capture_body("05_tasks_get_unknown.response.txt"), headers=JSON)
    with pytest.raises(errors.TaskNotFoundError) as info:
        await client.get("nope")
    message = str(info.value)
    assert "Task not found: nope" in message and RPC in message and "tasks/get" in message and "task nope" in message
    assert info.value.retryable


async def test_500_text_plain_on_get_is_retryable_task_not_found(respx_mock, client):
    answer(respx_mock, 500, text="Internal Server Error", headers={"Content-Type": "text/plain"})
    with pytest.raises(errors.TaskNotFoundError):
        await client.get("nope")


async def test_401_is_not_authorised_and_never_quotes_the_key(respx_mock):
    secret = "sk-very-secret-1234"
    route = answer(respx_mock, 401, json={"detail": f"bad api key {secret}"})
    async with AsyncAgentClient(RPC, auth=ApiKeyAuth(secret)) as client:
        with pytest.raises(errors.NotAuthorizedError) as info:
            await client.get("t1")
    assert secret not in str(info.value)
    assert route.calls.last.request.headers["X-Api-Key"] == secret


async def test_custom_api_key_header(respx_mock):
    route = answer(respx_mock, 200, content=capture_body("05_tasks_get_unknown.response.txt"), headers=JSON)
    async with AsyncAgentClient(RPC, auth=ApiKeyAuth("k", header="X-Agent-Key")) as client:
        with pytest.raises(errors.TaskNotFoundError):
            await client.get("nope")
    assert route.calls.last.request.headers["X-Agent-Key"] == "k"


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
async def test_protocol_violations_quote_the_problem(respx_mock, client, kwargs, expected):
    kwargs = dict(kwargs)
    status = kwargs.pop("status_code", 200)
    answer(respx_mock, status, **kwargs)
    with pytest.raises(errors.ProtocolViolationError, match=expected) as info:
        await client.get("t")
    assert not info.value.retryable


async def test_extra_fields_are_tolerated(respx_mock, client):
    body = json.loads(capture_body("04_tasks_get_final.response.txt"))
    body["result"]["futureField"] = {"x": 1}
    body["result"]["messages"][0]["newThing"] = True
    answer(respx_mock, 200, json=body)
    assert (await client.get("slow-a4beec8c")).state is TaskState.COMPLETED


@pytest.mark.parametrize(
    "exc, words",
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "cannot connect (Connection refused)"),
        (httpx.ConnectTimeout("timed out"), "cannot connect within 1 s"),
        (httpx.ReadTimeout("timed out"), "no answer within 2 s"),
        (httpx.RemoteProtocolError("peer closed"), "connection broke (RemoteProtocolError)"),
    ],
)
async def test_connection_problems_are_agent_unreachable(respx_mock, client, exc, words):
    respx_mock.post(RPC).mock(side_effect=exc)
    with pytest.raises(errors.AgentUnreachableError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
        await client.get("t")
    assert info.value.retryable


async def test_unreachable_messages_carry_no_url_credentials(respx_mock):
    url = "http://user:pa55word@agent.test/a2a/?key=sk-in-query"
    respx_mock.post(url__startswith="http://agent.test/a2a/").mock(side_effect=httpx.ConnectError("refused"))
    async with AsyncAgentClient(url) as client:
        with pytest.raises(errors.AgentUnreachableError) as info:
            await client.get("t")
    assert "pa55word" not in str(info.value) and "sk-in-query" not in str(info.value)
    assert "http://agent.test/a2a/" in str(info.value)


async def test_subscribe_decodes_the_captured_stream(respx_mock, client):
    route = answer(respx_mock, 200, content=capture_body("03_sse.raw.txt"), headers=SSE)
    events = await collect(client.subscribe("slow-a4beec8c"))
    assert [type(e) for e in events] == [TaskStatusEvent, TaskMessageEvent, TaskArtifactEvent, TaskStatusEvent]
    assert events[-1].state is TaskState.COMPLETED
    assert route.calls.last.request.headers["Accept"] == "text/event-stream"
    assert sent(route)["method"] == "tasks/sendSubscribe"


async def test_subscribe_json_answer_is_task_not_found_not_an_empty_stream(respx_mock, client):
    answer(respx_mock, 200, content=capture_body("06_sse_unknown.response.txt"), headers=JSON)
    with pytest.raises(errors.TaskNotFoundError, match="tasks/sendSubscribe"):
        await collect(client.subscribe("nope"))


async def test_subscribe_json_result_is_not_a_stream(respx_mock, client):
    answer(respx_mock, 200, json={"jsonrpc": "2.0", "result": {"id": "t"}, "id": 1})
    with pytest.raises(errors.StreamDisconnectedError, match="JSON result instead of a stream"):
        await collect(client.subscribe("t"))


async def test_subscribe_stream_without_terminal_state_is_a_disconnect(respx_mock, client):
    body = capture_body("03_sse.raw.txt").split(b"event: task_artifact")[0]
    answer(respx_mock, 200, content=body, headers=SSE)
    seen = []
    with pytest.raises(errors.StreamDisconnectedError, match="after 2 events"):
        async for event in client.subscribe("slow-a4beec8c"):
            seen.append(event)
    assert len(seen) == 2


class _BreaksAfter(httpx.AsyncByteStream):
    """A response body that sends some bytes, then loses the connection."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self):
        yield self.first
        raise httpx.ReadError("connection reset")


async def test_subscribe_broken_connection_is_a_disconnect(respx_mock, client):
    first = capture_body("03_sse.raw.txt").split(b"event: task_message")[0]
    answer(respx_mock, 200, stream=_BreaksAfter(first), headers=SSE)
    with pytest.raises(errors.StreamDisconnectedError, match=r"stream broke after 1 events \(ReadError\)"):
        await collect(client.subscribe("slow-a4beec8c"))


async def test_subscribe_failed_task_stream_ends_with_failed_status(respx_mock, client):
    answer(respx_mock, 200, content=capture_body("14_failed_task.sse.raw.txt"), headers=SSE)
    events = await collect(client.subscribe("slow-7810e8a8"))
    assert events[-1].state is TaskState.FAILED
    assert events[-1].message_text == "slow agent failed on purpose"


@pytest.mark.parametrize(
    "body, error",
    [
        # an unknown event is skipped; here the stream then ends without a terminal state
        (b"event: surprise\ndata: {}\n\n", errors.StreamDisconnectedError),
        # a damaged event ends the stream as a disconnect (the task is read with tasks/get anyway)
        (b"event: task_status\ndata: {not json\n\n", errors.StreamDisconnectedError),
        (b'event: error\ndata: {"error": -32001, "message": "Task not found: t"}\n\n', errors.TaskNotFoundError),
    ],
)
async def test_subscribe_bad_events(respx_mock, client, body, error):
    answer(respx_mock, 200, content=body, headers=SSE)
    with pytest.raises(error):
        await collect(client.subscribe("t"))


async def test_subscribe_skips_comments_and_events_without_data(respx_mock, client):
    body = b": ping\n\nevent: task_status\n\n" + capture_body("03_sse.raw.txt")
    answer(respx_mock, 200, content=body, headers=SSE)
    assert len(await collect(client.subscribe("t"))) == 4


async def test_subscribe_wrong_content_type(respx_mock, client):
    answer(respx_mock, 200, text="hello", headers={"Content-Type": "text/plain"})
    with pytest.raises(errors.StreamDisconnectedError, match="content type 'text/plain' instead of an event stream"):
        await collect(client.subscribe("t"))


async def test_subscribe_uses_the_given_read_timeout(respx_mock, client):
    route = answer(respx_mock, 200, content=capture_body("03_sse.raw.txt"), headers=SSE)
    await collect(client.subscribe("t", read_timeout=900))
    assert timeouts(route) == (1, 900)


async def test_cancel_finished_task_is_success_false(respx_mock, client):
    answer(respx_mock, 200, content=capture_body("07_cancel_done.response.txt"), headers=JSON)
    assert (await client.cancel("slow-a4beec8c")).success is False


async def test_fetch_card(respx_mock, client):
    card = {"name": "Slow", "url": "http://localhost:8000/a2a/", "authSchemes": [{"scheme": "apiKey"}]}
    respx_mock.get("http://agent.test/agent-card.json").mock(return_value=httpx.Response(200, json=card))
    assert (await client.fetch_card("http://agent.test/agent-card.json")).url == "http://localhost:8000/a2a/"


async def test_fetch_card_not_json(respx_mock, client):
    respx_mock.get("http://agent.test/agent-card.json").mock(return_value=httpx.Response(200, text="<html>"))
    with pytest.raises(errors.ProtocolViolationError, match="agent card is not valid JSON"):
        await client.fetch_card("http://agent.test/agent-card.json")


async def test_redirect_to_the_slash_endpoint_is_followed(respx_mock):
    respx_mock.post("http://agent.test/a2a").mock(
        return_value=httpx.Response(307, headers={"Location": "http://agent.test/a2a/"}))
    answer(respx_mock, 200, content=capture_body("04_tasks_get_final.response.txt"), headers=JSON)
    async with AsyncAgentClient("http://agent.test/a2a") as client:
        assert (await client.get("slow-a4beec8c")).state is TaskState.COMPLETED


async def test_a_given_http_client_is_left_open(respx_mock):
    answer(respx_mock, 200, content=capture_body("07_cancel_done.response.txt"), headers=JSON)
    async with httpx.AsyncClient() as http:
        async with AsyncAgentClient(RPC, http=http) as client:
            await client.cancel("t")
        assert not http.is_closed


def test_clients_share_one_ssl_context_per_setting():
    from airflow_agentvault.protocol.async_client import ssl_context

    assert ssl_context(True) is ssl_context(True)
    assert ssl_context(False) is not ssl_context(True)
    assert ssl_context(False).verify_mode.name == "CERT_NONE" and ssl_context(True).check_hostname


async def test_a_redirect_to_another_origin_is_not_followed(respx_mock):
    respx_mock.post(RPC).mock(return_value=httpx.Response(307, headers={"Location": "https://evil.example/c"}))
    collector = respx_mock.post("https://evil.example/c").mock(return_value=httpx.Response(200, json={}))
    async with AsyncAgentClient(RPC, auth=ApiKeyAuth("sk-key")) as client:
        with pytest.raises(errors.ProtocolViolationError, match="redirected to another origin"):
            await client.get("t")
    assert not collector.called
