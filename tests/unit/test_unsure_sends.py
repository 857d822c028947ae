"""A send whose answer is lost after it reached the agent: typed, never silently repeated; lost tasks replaced."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import requests

from airflow_agentvault.operators.remote_task import SEEN_KEY, TASK_ID_KEY, UNSURE_KEY, start_or_reconnect
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.models import Message, TextPart

from fakes import FakeTaskStateStore, make_context, rpc_error, rpc_result, task_json

RPC = "http://agent.test/a2a/"
HELLO = Message(role="user", parts=[TextPart(content="hello")])
log = logging.getLogger("test")


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_send_answered_by_a_gateway_error_is_ambiguous(requests_mock, status):
    requests_mock.post(RPC, status_code=status, text="Bad Gateway", headers={"Content-Type": "text/html"})
    with pytest.raises(errors.AmbiguousSendError, match="may have started the task anyway"):
        AgentClient(RPC).send(HELLO)


def test_a_busy_agent_is_not_ambiguous(requests_mock):
    requests_mock.post(RPC, status_code=503, text="busy", headers={"Retry-After": "2"})
    with pytest.raises(errors.AgentUnreachableError) as info:
        AgentClient(RPC).send(HELLO)
    assert not isinstance(info.value, errors.AmbiguousSendError) and info.value.retry_after == 2.0


def test_a_reset_after_the_request_left_is_ambiguous(requests_mock):
    requests_mock.post(RPC, exc=requests.ConnectionError("('Connection aborted.', RemoteDisconnected('closed'))"))
    with pytest.raises(errors.AmbiguousSendError, match="connection broke"):
        AgentClient(RPC).send(HELLO)


def test_a_refused_connection_is_not_ambiguous(requests_mock):
    requests_mock.post(RPC, exc=requests.ConnectionError("Connection refused"))
    with pytest.raises(errors.AgentUnreachableError, match="cannot connect") as info:
        AgentClient(RPC).send(HELLO)
    assert not isinstance(info.value, errors.AmbiguousSendError)


def test_a_get_that_breaks_is_plainly_unreachable(requests_mock):
    requests_mock.post(RPC, exc=requests.ConnectionError("('Connection aborted.', RemoteDisconnected('closed'))"))
    with pytest.raises(errors.AgentUnreachableError) as info:
        AgentClient(RPC).get("t-1")
    assert not isinstance(info.value, errors.AmbiguousSendError)


@pytest.mark.parametrize("exc, ambiguous", [
    (httpx.RemoteProtocolError("peer closed"), True),
    (httpx.ReadTimeout("slow"), True),
    (httpx.ConnectError("refused"), False),
])
async def test_the_async_client_tells_the_same(respx_mock, exc, ambiguous):
    respx_mock.post(RPC).mock(side_effect=exc)
    async with AsyncAgentClient(RPC) as client:
        with pytest.raises(errors.AgentUnreachableError if not ambiguous else errors.AmbiguousSendError):
            await client.send(HELLO)


def test_an_unsure_send_is_remembered_and_a_permitted_resend_warns(requests_mock, caplog):
    store = FakeTaskStateStore()
    requests_mock.post(RPC, status_code=502, text="Bad Gateway")
    with pytest.raises(errors.AmbiguousSendError):
        start_or_reconnect(AgentClient(RPC), HELLO, store, log)
    assert store.get(UNSURE_KEY) and store.get(TASK_ID_KEY) is None
    requests_mock.post(RPC, **rpc_result({"id": "t-2"}))
    with caplog.at_level(logging.WARNING):
        assert start_or_reconnect(AgentClient(RPC), HELLO, store, log) == "t-2"
    assert "orphaned" in caplog.text


def test_a_task_the_agent_forgot_after_showing_it_is_replaced(requests_mock):
    store = FakeTaskStateStore()
    store.set(TASK_ID_KEY, "t-1")
    store.set(SEEN_KEY, "t-1")
    answers = iter([rpc_error(-32001, "Task not found: t-1"), rpc_result({"id": "t-2"})])
    requests_mock.post(RPC, [next(answers), next(answers)])
    assert start_or_reconnect(AgentClient(RPC), HELLO, store, log) == "t-2"
    assert store.get(TASK_ID_KEY) == "t-2"


def test_a_task_not_visible_yet_is_reconnected_to(requests_mock):
    store = FakeTaskStateStore()
    store.set(TASK_ID_KEY, "t-1")
    requests_mock.post(RPC, **rpc_error(-32001, "Task not found: t-1"))
    assert start_or_reconnect(AgentClient(RPC), HELLO, store, log) == "t-1"
    assert [r.json()["method"] for r in requests_mock.request_history] == ["tasks/get"]


@pytest.mark.parametrize("state, resent", [("WORKING", False), ("COMPLETED", False), ("FAILED", True)])
def test_an_earlier_tries_task_is_reused_unless_it_ended_without_result(requests_mock, state, resent):
    store = FakeTaskStateStore()
    store.set(TASK_ID_KEY, "t-1")
    requests_mock.post(RPC, [rpc_result(task_json("t-1", state)), rpc_result({"id": "t-2"})])
    assert start_or_reconnect(AgentClient(RPC), HELLO, store, log) == ("t-2" if resent else "t-1")


V10 = "http://agent.test/"


def v10_task(task_id: str, state: str, stamp: str) -> dict:
    return {"id": task_id, "contextId": "c-1", "status": {"state": state, "timestamp": stamp}}


def test_where_the_dialect_lists_tasks_a_lost_send_is_resolved_by_adopting_its_task(requests_mock):
    from airflow_agentvault.protocol.dialects import codec_for

    def answer(request, context):
        body = request.json()
        if body["method"] == "SendMessage":
            assert body["params"]["message"]["contextId"] == "c-1"  # the conversation is chosen by us
            context.status_code = 502
            return "Bad Gateway"
        assert body["method"] == "ListTasks" and body["params"]["contextId"] == "c-1"
        return json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": {"tasks": [
            v10_task("old", "TASK_STATE_FAILED", "2026-11-29T10:00:00Z"),
            v10_task("new", "TASK_STATE_WORKING", "2026-11-29T09:00:00Z")]}})

    requests_mock.post(V10, text=answer, headers={"Content-Type": "application/json"})
    store = FakeTaskStateStore()
    client = AgentClient(V10, codec=codec_for("a2a-1.0"))
    assert start_or_reconnect(client, HELLO, store, log, context_id="c-1") == "new"
    assert store.get(TASK_ID_KEY) == "new" and store.get(UNSURE_KEY) is None


def test_the_conversation_id_is_the_same_on_every_try_and_differs_per_task_instance():
    from airflow_agentvault.operators.remote_task import conversation_id

    first, retry = make_context(try_number=1), make_context(try_number=2)
    assert conversation_id(first, "stage") == conversation_id(retry, "stage") != conversation_id(first, "other")
