"""Waiting by push: the push-config requests of each dialect, the decision, the follower's push path (HTTP
mocked with respx) and the receiver (a real listener on loopback)."""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Callable

import httpx
import pytest

from airflow_agentvault.connection_form import CONN_FIELDS
from airflow_agentvault.hooks.connection_settings import ConnectionConfigError, push_settings
from airflow_agentvault.protocol import errors, receiver
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.dialects import codec_for
from airflow_agentvault.protocol.follow import PATH_PUSH, Follower, FollowOutcome
from airflow_agentvault.protocol.operations import Agent
from airflow_agentvault.protocol.push import PUSH_MODES, PushPlan, PushSettings, wants_push
from airflow_agentvault.protocol.timing import Timing

from fakes import kept_while_parked

RPC = "http://agent.test/"
REST = "http://agent.test/rest"


def test_each_a2a_dialect_registers_and_deletes_a_push_config():
    v10 = codec_for("a2a-1.0").push_register_request(RPC, "t1", "c1", "http://me/a2a-push/x", "tok")
    assert (v10.op, v10.http_method, v10.url) == ("CreateTaskPushNotificationConfig", "POST", RPC)
    assert v10.body["params"] == {"taskId": "t1", "id": "c1", "url": "http://me/a2a-push/x", "token": "tok"}
    assert v10.headers["A2A-Version"] == "1.0" and not v10.starts_task
    assert codec_for("a2a-1.0").push_delete_request(RPC, "t1", "c1").body["params"] == {"taskId": "t1", "id": "c1"}

    v03 = codec_for("a2a-0.3").push_register_request(RPC, "t1", "c1", "http://me/x", "tok")
    assert v03.body["method"] == "tasks/pushNotificationConfig/set"
    assert v03.body["params"] == {"taskId": "t1", "pushNotificationConfig": {"id": "c1", "url": "http://me/x",
                                                                             "token": "tok"}}
    gone = codec_for("a2a-0.3").push_delete_request(RPC, "t1", "c1")
    assert gone.body["method"] == "tasks/pushNotificationConfig/delete"
    assert gone.body["params"] == {"id": "t1", "pushNotificationConfigId": "c1"}

    rest = codec_for("a2a-rest").push_register_request(REST, "t/1", "c1", "http://me/x", "tok")
    assert (rest.http_method, rest.url) == ("POST", REST + "/tasks/t%2F1/pushNotificationConfigs")
    assert rest.body == {"taskId": "t/1", "id": "c1", "url": "http://me/x", "token": "tok"}
    gone = codec_for("a2a-rest").push_delete_request(REST, "t/1", "c1")
    assert (gone.http_method, gone.url) == ("DELETE", REST + "/tasks/t%2F1/pushNotificationConfigs/c1")

    assert codec_for("agentvault").push_register_request(RPC, "t1", "c1", "http://me/x", "tok") is None


@pytest.mark.parametrize(("dialect", "mode", "offered", "wanted"), [
    ("a2a-1.0", "auto", True, True), ("a2a-1.0", "auto", False, False), ("a2a-1.0", "on", False, True),
    ("a2a-1.0", "off", True, False), ("a2a-rest", "auto", True, True), ("agentvault", "on", True, False),
])
def test_push_is_chosen_in_one_place(dialect, mode, offered, wanted):
    assert wants_push(mode, Agent(codec_for(dialect), RPC, push_offered=offered)) is wanted


def test_the_connection_form_offers_the_push_modes_and_settings_are_checked():
    assert tuple(CONN_FIELDS["push"]["schema"]["enum"]) == PUSH_MODES
    settings = push_settings("c", {"push": "auto", "push_bind": "0.0.0.0:8799", "push_url": "https://hooks.test/p",
                                   "push_safety_poll": "30"})
    assert settings == PushSettings("auto", "0.0.0.0", 8799, "https://hooks.test/p", 30.0)
    assert push_settings("c", {}) == PushSettings()
    assert push_settings("c", {"push_bind": "[::1]:0"}).bind_host == "::1"
    for extra in ({"push": "sometimes"}, {"push_url": "ftp://x"}, {"push_safety_poll": "0"}):
        with pytest.raises(ConnectionConfigError):
            push_settings("c", extra)


def test_a_push_plan_never_shows_its_token():
    plan = PushPlan("http://me/x", None, token="s3cret-token")
    assert "s3cret-token" not in repr(plan) and plan.config_id


async def by_push(client: AsyncAgentClient, follower: Follower, task_id: str, plan: PushPlan) -> FollowOutcome:
    """A follow by push through the asyncio runner, parked between reads as a trigger's is."""
    return await receiver.wait_by_push(client, follower, await client.run(follower.follow_by_push(task_id, plan)))


def rpc_result(request: httpx.Request, states: list[str], calls: list[str]) -> httpx.Response:
    body = json.loads(request.content)
    calls.append(body["method"])
    if body["method"] == "GetTask":
        state = states.pop(0) if len(states) > 1 else states[0]
        task = {"id": body["params"].get("id", "t1"), "contextId": "c", "status": {"state": state}}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": task})
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": {}})


async def test_the_follower_reads_the_task_on_each_notification_and_leaves_an_ended_tasks_config(respx_mock):
    states = ["TASK_STATE_WORKING", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    calls: list[str] = []
    respx_mock.post(RPC).mock(side_effect=lambda request: rpc_result(request, states, calls))
    bell = receiver.Doorbell()
    rings = 0

    class Bell:
        async def wait(self, seconds: float) -> bool:
            nonlocal rings
            rings += 1
            bell.ring()  # a notification arrived
            return await bell.wait(seconds)

    async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0")) as client:
        follower = Follower(client.agent, Timing(overall_timeout=30))
        outcome = await by_push(client, follower, "t1", PushPlan("http://me/x", Bell(), 3600.0))
    assert outcome.path == PATH_PUSH and outcome.task.state.value == "COMPLETED"
    assert calls == ["GetTask", "CreateTaskPushNotificationConfig", "GetTask", "GetTask"]  # no delete: it ended
    assert rings == 1


@pytest.mark.parametrize("final", ["TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"])
async def test_a_wait_that_ends_while_the_task_goes_on_removes_its_config(respx_mock, final):
    calls: list[str] = []
    states = ["TASK_STATE_WORKING", final]
    respx_mock.post(RPC).mock(side_effect=lambda request: rpc_result(request, states, calls))
    async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0")) as client:  # the read after registering finds it
        follower = Follower(client.agent, Timing(overall_timeout=5))
        outcome = await by_push(client, follower, "t1", PushPlan("http://me/x", receiver.Doorbell(), 3600.0))
    assert outcome.path == PATH_PUSH and outcome.task.state.value == final.removeprefix("TASK_STATE_")
    assert calls[-1] == "DeleteTaskPushNotificationConfig"


def refusing_push(calls: list[str], on_subscribe: Callable[[], None] = lambda: None) -> Callable[[httpx.Request], httpx.Response]:
    """An agent that refuses every push config (as a2a-sdk does without a push store) and whose task then ends."""
    states = ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["method"] == "CreateTaskPushNotificationConfig":
            calls.append(body["method"])
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": {
                "code": -32003, "message": "Push notification is not supported"}})
        if body["method"] == "SubscribeToTask":
            on_subscribe()
        return rpc_result(request, states, calls)

    return answer


async def test_a_refused_registration_means_streaming(respx_mock):
    calls: list[str] = []
    respx_mock.post(RPC).mock(side_effect=refusing_push(calls))
    async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0")) as client:
        follower = Follower(client.agent, Timing(overall_timeout=10, sse_attempts=1, poll_interval=0.01))
        outcome = await by_push(client, follower, "t1", PushPlan("http://me/x", receiver.Doorbell()))
    assert outcome.path != PATH_PUSH and outcome.task.state.value == "COMPLETED"
    assert "CreateTaskPushNotificationConfig" in calls and "SubscribeToTask" in calls


async def test_a_wait_the_agent_refuses_to_call_back_lets_the_next_wait_begin_before_it_streams(respx_mock):
    held_while_streaming: list[bool] = []
    respx_mock.post(RPC).mock(side_effect=refusing_push([], lambda: held_while_streaming.append(slot.held)))
    try:
        async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0"), keep_alive=False) as client:
            client.push = PushSettings(mode="on")
            follower = Follower(client.agent, Timing(overall_timeout=10, sse_attempts=1, poll_interval=0.01))
            slot = await receiver.start_slot()
            outcome = await receiver.follow(client, follower, "t1", deadline=time.monotonic() + 10, slot=slot)
    finally:
        await receiver.stop_shared()
    assert outcome.path != PATH_PUSH and outcome.task.state.value == "COMPLETED"
    assert held_while_streaming == [False]


class Rung:
    """A doorbell whose every wait is a notification, at once."""

    async def wait(self, seconds: float) -> bool:
        return True


async def test_a_later_read_that_fails_for_good_removes_the_config_and_raises(respx_mock):
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if calls.count("GetTask") == 2:  # the read after the notification: the agent now refuses us
            calls.append(json.loads(request.content)["method"])
            if calls[-1] == "GetTask":
                return httpx.Response(401, json={"error": "bad token"})
        return rpc_result(request, ["TASK_STATE_WORKING"], calls)

    respx_mock.post(RPC).mock(side_effect=answer)
    async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0")) as client:
        follower = Follower(client.agent, Timing(overall_timeout=30))
        with pytest.raises(errors.NotAuthorizedError):
            await by_push(client, follower, "t1", PushPlan("http://me/x", Rung(), 3600.0))
    assert calls == ["GetTask", "CreateTaskPushNotificationConfig", "GetTask", "GetTask",
                     "DeleteTaskPushNotificationConfig"]


async def test_a_wait_by_push_past_its_deadline_removes_the_config_and_says_how_it_waited(respx_mock):
    calls: list[str] = []
    respx_mock.post(RPC).mock(side_effect=lambda request: rpc_result(request, ["TASK_STATE_WORKING"], calls))
    async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0")) as client:
        follower = Follower(client.agent, Timing(overall_timeout=30))
        waited = follower.follow_by_push("t1", PushPlan("http://me/x", Rung(), 3600.0), deadline=time.monotonic())
        with pytest.raises(errors.WaitTimeoutError, match="1 reads by push, at least every 3600 s") as raised:
            await receiver.wait_by_push(client, follower, await client.run(waited))
    assert raised.value.task_id == "t1" and calls[-1] == "DeleteTaskPushNotificationConfig"


async def test_a_receiver_that_cannot_start_means_streaming(respx_mock, monkeypatch):
    calls: list[str] = []
    states = ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    respx_mock.post(RPC).mock(side_effect=lambda request: rpc_result(request, states, calls))

    async def taken_port(*args: object) -> receiver.PushReceiver:
        raise OSError("address already in use")

    monkeypatch.setattr(receiver, "shared_receiver", taken_port)
    async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0")) as client:
        client.push = PushSettings(mode="on")
        follower = Follower(client.agent, Timing(overall_timeout=10, sse_attempts=1, poll_interval=0.01))
        outcome = await receiver.follow(client, follower, "t1", deadline=time.monotonic() + 10)
    assert outcome.path != PATH_PUSH and outcome.task.state.value == "COMPLETED"
    assert "CreateTaskPushNotificationConfig" not in calls and "SubscribeToTask" in calls


async def test_the_receiver_rings_only_for_a_verified_notification():
    rec = await receiver.PushReceiver().start()
    try:
        channel = rec.open("the-token")
        async with httpx.AsyncClient() as http:
            good = {"X-A2A-Notification-Token": "the-token"}
            assert (await http.post(channel.url, json={}, headers={"X-A2A-Notification-Token": "nope"})).status_code \
                == 401
            assert (await http.post(channel.url, json={})).status_code == 401
            assert (await http.post(channel.url.replace(channel.name, "other"), headers=good)).status_code == 404
            assert (await http.put(channel.url, headers=good)).status_code == 404
            assert (await http.post(rec.public_url + "/", headers=good)).status_code == 404
            assert not await channel.doorbell.wait(0)
            too_big = b"x" * (receiver.MAX_BODY + 1)
            assert (await http.post(channel.url, content=too_big, headers=good)).status_code == 413
            assert not await channel.doorbell.wait(0)
            for _ in range(2):  # kept alive, and a duplicate is one more ring of the same flag
                assert (await http.post(channel.url, json={"task": {}}, headers=good)).status_code == 200
            assert await channel.doorbell.wait(0) and not await channel.doorbell.wait(0)
        rec.close(channel)
        assert not rec.channels
    finally:
        await rec.stop()


async def test_one_receiver_per_loop_and_bind_address():
    try:
        first = await receiver.shared_receiver()
        assert await receiver.shared_receiver() is first
        await first.stop()
        assert await receiver.shared_receiver() is not first  # a stopped one is started afresh
    finally:
        await receiver.stop_shared()


async def test_a_doorbell_wait_is_bounded():
    bell = receiver.Doorbell()
    assert await asyncio.wait_for(bell.wait(0.01), 5) is False


async def test_a_doorbell_rung_before_or_during_a_wait_wakes_it_once():
    bell = receiver.Doorbell()
    bell.ring()  # while the waiter was reading the task: the next wait returns at once
    assert await asyncio.wait_for(bell.wait(3600), 5) is True
    parked = bell.wait(3600)
    assert bell.waiting
    bell.ring()
    assert await asyncio.wait_for(parked, 5) is True and not bell.waiting
    assert await asyncio.wait_for(bell.wait(0.01), 5) is False  # each ring wakes one wait


async def test_waits_begin_a_few_at_a_time_and_a_slow_beginning_holds_its_slot_for_a_bounded_time(monkeypatch):
    monkeypatch.setattr(receiver, "STARTS_AT_ONCE", 2)  # this test's loop makes its own gate, of two slots
    first, second = await receiver.start_slot(), await receiver.start_slot()
    third = asyncio.ensure_future(receiver.start_slot())
    await asyncio.sleep(0)
    assert not third.done()  # both slots are held (for ten seconds at most)
    first.release()
    first.release()  # once only: the gate is not widened
    third_slot = await asyncio.wait_for(third, 5)
    monkeypatch.setattr(receiver, "START_HOLD", 0.01)
    fourth = asyncio.ensure_future(receiver.start_slot())
    await asyncio.sleep(0)
    assert not fourth.done()
    second.release()
    fourth_slot = await asyncio.wait_for(fourth, 5)
    # Neither holder lets go, and a fifth wait still begins: a slot is held START_HOLD seconds at most.
    assert third_slot and fourth_slot and await asyncio.wait_for(receiver.start_slot(), 5)


async def test_a_wait_by_push_lets_the_next_wait_begin_once_it_is_parked(respx_mock, monkeypatch):
    monkeypatch.setattr(receiver, "STARTS_AT_ONCE", 1)
    monkeypatch.setattr(receiver, "START_HOLD", 3600.0)  # only the wait's own release frees the slot
    respx_mock.post(RPC).mock(side_effect=lambda request: rpc_result(request, ["TASK_STATE_WORKING"], []))
    try:
        async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0"), keep_alive=False) as client:
            client.push = PushSettings(mode="on")
            follower = Follower(client.agent, Timing(overall_timeout=600))
            slot = await receiver.start_slot()  # the only one, taken before the connection was read
            waiting = asyncio.ensure_future(receiver.follow(client, follower, "t1", deadline=time.monotonic() + 600,
                                                            slot=slot))
            assert await asyncio.wait_for(receiver.start_slot(), 5)
            [channel] = (await receiver.shared_receiver()).channels.values()
            assert channel.doorbell.waiting and not waiting.done()
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            assert not channel.doorbell.waiting
    finally:
        await receiver.stop_shared()


async def test_a_doorbell_left_or_waited_on_again_leaves_no_wait_pending():
    bell = receiver.Doorbell()
    first = bell.wait(3600)
    second = bell.wait(3600)  # one wait at a time: the earlier one ends, unrung
    assert first.done() and first.result() is False and bell.waiting
    bell.close()  # the channel closed while a wait was parked: it ends too, and its timer is cancelled
    assert second.done() and second.result() is False and not bell.waiting
    bell.ring()
    assert await asyncio.wait_for(bell.wait(3600), 5) is True  # a ring after that is kept for the next wait


async def test_a_parked_push_wait_holds_no_http_client_nor_task_and_makes_a_client_for_the_next_read(respx_mock):
    """While parked, nothing keeps the dropped client, a task read before (a frame's local would) or a
    routine of the follower (whose frames would keep what they read)."""
    calls: list[str] = []
    states = ["TASK_STATE_WORKING", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    respx_mock.post(RPC).mock(side_effect=lambda request: rpc_result(request, states, calls))
    held_while_parked: list[tuple[object, object, list[str]]] = []

    async with AsyncAgentClient(RPC, codec=codec_for("a2a-1.0"), keep_alive=False) as client:
        first_client = weakref.ref(client.runner.http)

        class Bell:
            async def wait(self, seconds: float) -> bool:
                held_while_parked.append((client.runner.http, first_client(), kept_while_parked("t-parked")))
                return True  # a notification

        follower = Follower(client.agent, Timing(overall_timeout=30))
        outcome = await by_push(client, follower, "t-parked", PushPlan("http://me/x", Bell(), 3600.0))
    assert outcome.task.state.value == "COMPLETED" and calls[-1] == "GetTask"
    assert held_while_parked == [(None, None, [])]
