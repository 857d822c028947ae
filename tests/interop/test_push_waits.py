"""Waiting by push notification: the stream trigger against a2a-sdk 1.3.0 calling back over loopback.

Every binding (JSON-RPC 1.0, JSON-RPC 0.3, HTTP+JSON) registers a push config with this process's
receiver and resumes on the agent's notification; the faults (a lost notification, duplicates, an agent
that never calls back, a forged notification, a task that ended before the registration, a receiver
restarted mid-wait) each end with the agent's exact result, or a typed error within the bound.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from airflow_agentvault.operators.stage_timing import StageTiming
from airflow_agentvault.protocol import receiver
from airflow_agentvault.protocol.models import TaskState
from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger
from airflow_agentvault.triggers.events import event_to_outcome

from interop import servers
from interop.matrix_scenarios import SyncApi

pytestmark = pytest.mark.integration

A2A_ROWS = ["a2a-1.3.0-jsonrpc-1.0", "a2a-1.3.0-jsonrpc-0.3", "a2a-1.3.0-rest"]
#: Every row whose agent calls back: a2a-sdk 1.3.0 in its three bindings and @a2a-js/sdk in its two.
PUSH_ROWS = A2A_ROWS + [f"a2a-js-{servers.JS_SDK_VERSION}-jsonrpc-1.0", f"a2a-js-{servers.JS_SDK_VERSION}-rest"]
TIMING = {"poll_interval": 0.2, "sse_retry_delay": 0.1, "overall_timeout": 40}
#: A safety poll far longer than any task here: a wait that ends before it was woken by a notification.
SLOW_SAFETY = 30.0
BOUND = 60.0


def connect(monkeypatch, server, *, dialect: str | None = None, push: str = "on", safety: float = SLOW_SAFETY) -> str:
    conn_id = f"push_{server.key}_{push}".replace("-", "_").replace(".", "_")
    host = server.rpc_url if dialect is None else server.base_url
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
        {"conn_type": "agentvault", "host": host,
         "extra": {"dialect": dialect or server.dialect, "push": push, "push_safety_poll": safety}}))
    return conn_id


async def wait_for(trigger: AgentVaultStreamTrigger, during=None) -> dict:
    async def first() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    waiting = asyncio.create_task(first())
    if during is not None:
        await during()
    try:
        return await asyncio.wait_for(waiting, BOUND)
    finally:
        await receiver.stop_shared()


async def channel_open(bound: float = 10.0) -> receiver.PushReceiver:
    """The shared receiver once a wait has opened its channel (polled, bounded)."""
    rec = await receiver.shared_receiver()
    loop = asyncio.get_running_loop()
    until = loop.time() + bound
    while not rec.channels:
        assert loop.time() < until, "no wait opened a push channel"
        await asyncio.sleep(0.01)
    return rec


async def run_stage(monkeypatch, server, text: str, *, during=None, **connection) -> tuple[dict, object, SyncApi]:
    conn_id = connect(monkeypatch, server, **connection)
    api = SyncApi(server)
    task_id = await api.send(text)
    event = await wait_for(AgentVaultStreamTrigger(conn_id=conn_id, agent_task_id=task_id,
                                                   **StageTiming.begin(TIMING).trigger_kwargs()), during)
    final = await api.get(task_id)
    await api.aclose()
    return event, final, api


def assert_exact(event: dict, final, server, delivered_by: str = "push") -> dict:
    assert final.state is TaskState.COMPLETED
    result = event_to_outcome(event, agent_url=server.rpc_url)
    assert result["state"] == "COMPLETED"
    assert result["text"] == (final.answer_text() or "") and result["text"]
    assert event["metadata"]["delivered_by"] == delivered_by, event["metadata"]
    return result


@pytest.mark.parametrize("row", PUSH_ROWS)
async def test_a_stage_resumes_on_the_agents_notification(monkeypatch, interop_server, row):
    """The wait ends when the agent calls: the task is canceled once the wait is registered, long before the
    safety poll, so only the notification can have woken it."""
    server = interop_server(row)
    conn_id = connect(monkeypatch, server)
    api = SyncApi(server)
    task_id = await api.send("push sleep=60")
    rung: list[int] = []

    async def cancel_once_registered():
        rec = await channel_open()
        channel = next(iter(rec.channels.values()))
        bound = asyncio.get_running_loop().time() + 10
        while not channel.doorbell.waiting:  # registered, read, and now waiting for the agent to call
            assert asyncio.get_running_loop().time() < bound, "the wait never parked on its doorbell"
            await asyncio.sleep(0.01)
        before = rec.counts["rung"]
        await api.cancel(task_id)
        bound = asyncio.get_running_loop().time() + 10
        while rec.counts["rung"] == before:
            assert asyncio.get_running_loop().time() < bound, "the agent never called back"
            await asyncio.sleep(0.01)
        rung.append(rec.counts["rung"])

    event = await wait_for(AgentVaultStreamTrigger(conn_id=conn_id, agent_task_id=task_id,
                                                   **StageTiming.begin(TIMING).trigger_kwargs()),
                           cancel_once_registered)
    final = await api.get(task_id)
    await api.aclose()
    assert final.state is TaskState.CANCELED
    assert event["status"] == "done" and event["task"]["state"] == "CANCELED", event
    assert event["metadata"]["delivered_by"] == "push" and rung


async def test_auto_waits_by_push_where_the_card_offers_it(monkeypatch, interop_server):
    server = interop_server("a2a-1.3.0-jsonrpc-1.0")
    event, final, _ = await run_stage(monkeypatch, server, "auto sleep=1.5", dialect="auto", push="auto")
    assert_exact(event, final, server)


async def test_duplicate_notifications_deliver_once(monkeypatch, interop_server):
    server = interop_server("a2a-1.3.0-jsonrpc-1.0")
    event, final, _ = await run_stage(monkeypatch, server, "dup sleep=1.5 push=twice")
    assert_exact(event, final, server)


@pytest.mark.parametrize("fault", ["lose_final", "none"])
async def test_a_lost_notification_costs_one_safety_poll(monkeypatch, interop_server, fault):
    server = interop_server("a2a-1.3.0-jsonrpc-1.0")
    event, final, _ = await run_stage(monkeypatch, server, f"lost sleep=1.5 push={fault}", safety=1.0)
    assert_exact(event, final, server)


async def test_an_agent_that_never_calls_back_ends_in_a_timeout_within_the_bound(monkeypatch, interop_server):
    server = interop_server("a2a-1.3.0-jsonrpc-1.0")
    conn_id = connect(monkeypatch, server, safety=0.5)
    api = SyncApi(server)
    task_id = await api.send("silent sleep=30 push=none")
    timing = StageTiming.begin({**TIMING, "overall_timeout": 2})
    event = await wait_for(AgentVaultStreamTrigger(conn_id=conn_id, agent_task_id=task_id, **timing.trigger_kwargs()))
    await api.cancel(task_id)
    await api.aclose()
    assert event["status"] == "error" and event["error_type"] == "WaitTimeoutError", event
    assert event["task_id"] == task_id and "by push" in event["detail"]


async def test_forged_and_unknown_notifications_change_nothing(monkeypatch, interop_server):
    server = interop_server("a2a-1.3.0-jsonrpc-1.0")
    answers: list[int] = []

    async def forge():
        rec = await channel_open()
        channel = next(iter(rec.channels.values()))
        async with httpx.AsyncClient() as http:
            answers.append((await http.post(channel.url, json={"task": {}},
                                            headers={"X-A2A-Notification-Token": "forged"})).status_code)
            answers.append((await http.post(channel.url, json={"task": {}})).status_code)
            answers.append((await http.post(f"{rec.public_url}/a2a-push/unknown-task", json={},
                                            headers={"X-A2A-Notification-Token": channel.token})).status_code)
            answers.append((await http.get(channel.url)).status_code)

    event, final, _ = await run_stage(monkeypatch, server, "forged sleep=1.5", during=forge)
    assert_exact(event, final, server)
    assert answers == [401, 401, 404, 404]


async def test_a_task_that_ended_before_the_registration_is_read_at_once(monkeypatch, interop_server):
    server = interop_server("a2a-1.3.0-jsonrpc-1.0")
    conn_id = connect(monkeypatch, server)
    api = SyncApi(server)
    task_id = await api.send("quick delay=0 sleep=0")
    bound = asyncio.get_running_loop().time() + 10
    while not (await api.get(task_id)).state.ends_wait:  # ended before any registration
        assert asyncio.get_running_loop().time() < bound
        await asyncio.sleep(0.05)
    event = await wait_for(AgentVaultStreamTrigger(conn_id=conn_id, agent_task_id=task_id,
                                                   **StageTiming.begin(TIMING).trigger_kwargs()))
    final = await api.get(task_id)
    await api.aclose()
    assert_exact(event, final, server, delivered_by="already-finished")


async def test_a_receiver_restarted_mid_wait_costs_one_safety_poll(monkeypatch, interop_server):
    server = interop_server("a2a-1.3.0-jsonrpc-1.0")

    async def restart():
        rec = await channel_open()
        await rec.stop()  # the agent's notifications now find nobody listening

    event, final, _ = await run_stage(monkeypatch, server, "restart sleep=1.5", during=restart, safety=1.0)
    assert_exact(event, final, server)


def test_the_rows_exist():
    assert set(PUSH_ROWS) <= set(servers.ROWS_BY_KEY)
