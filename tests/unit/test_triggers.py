"""The deferrable-mode triggers and event_to_outcome, HTTP mocked by respx, time by a fake clock."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from airflow_agentvault.operators.stage_timing import StageTiming
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.timing import Timing
from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger, AgentVaultTaskExistsTrigger
from airflow_agentvault.triggers.events import ERROR_TYPES, error_event, event_to_outcome

from fakes import rpc_error, rpc_result, set_connection, task_json
from scenarios import BUSY, COMPLETED, FULL_STREAM, NOT_FOUND, RPC, WORKING, FakeClock, RecordingLogger, Script

SECRET = "sk-trigger-secret-0123456789"
CONN = "agentvault_trig"
WAIT_BOUND = 10.0
TIMING = {"verify_attempts": 4, "verify_interval": 0.2, "verify_backoff": 1.5, "verify_max_interval": 0.3,
          "sse_retry_delay": 0.5, "poll_interval": 1.0, "overall_timeout": 60.0}


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    set_connection(monkeypatch, CONN, RPC, password=SECRET)


@pytest.fixture
def clock():
    return FakeClock()


def wired(trigger, clock: FakeClock, logger: RecordingLogger | None = None):
    """Give the trigger the fake clock (and a recording log, unless the real Airflow log is wanted)."""
    trigger._clock, trigger._sleep = clock.time, clock.asleep
    if logger is not None:
        trigger._log = logger
    return trigger


def run_timing(clock, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The operator's StageTiming as trigger keywords; a test may fix the start or the deadline."""
    begun = StageTiming.begin(kwargs.pop("timing", TIMING), started_at=kwargs.pop("started_at", clock.now))
    return {**begun.trigger_arguments(), **kwargs}


def exists_trigger(clock, logger=None, **kwargs):
    return wired(AgentVaultTaskExistsTrigger(conn_id=CONN, agent_task_id="t-1", **run_timing(clock, kwargs)),
                 clock, logger)


def stream_trigger(clock, logger=None, **kwargs):
    return wired(AgentVaultStreamTrigger(conn_id=CONN, agent_task_id="t-1", **run_timing(clock, kwargs)),
                 clock, logger)


def script(respx_mock, replies: dict[str, list[dict[str, Any]]]) -> Script:
    played = Script(replies)
    respx_mock.post(RPC).mock(side_effect=played.respx_side_effect())
    return played


async def events_of(trigger) -> list[dict[str, Any]]:
    async def collect():
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), WAIT_BOUND)


# -- serialization ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [exists_trigger, stream_trigger])
def test_serialize_round_trips_and_holds_no_secret(make, clock):
    trigger = make(clock)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    assert module == "airflow_agentvault.triggers.agentvault"
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    dumped = json.dumps(kwargs)  # only JSON-plain values: ids, numbers, the conn id, deadlines
    assert SECRET not in dumped and "password" not in dumped
    assert kwargs["conn_id"] == CONN and kwargs["agent_task_id"] == "t-1"
    assert kwargs["timing"] == Timing.parse(TIMING).model_dump()
    assert kwargs["deadline"] == clock.now + 60


def test_deadlines_are_absolute_and_carried_as_the_operator_fixed_them(clock):
    begun = StageTiming.begin(TIMING, started_at=1000.0)
    exists = AgentVaultTaskExistsTrigger(CONN, "t-1", **begun.trigger_arguments())
    assert exists.serialize()[1]["deadline"] == 1060.0
    stream = AgentVaultStreamTrigger(CONN, "t-1", TIMING, started_at=1000.0, deadline=1234.5, cancel_on_kill=False)
    assert stream.serialize()[1] == {"conn_id": CONN, "agent_task_id": "t-1", "started_at": 1000.0,
                                     "timing": Timing.parse(TIMING).model_dump(), "deadline": 1234.5,
                                     "cancel_on_kill": False, "push": None, "known_state": None}


def test_a_restored_trigger_validates_the_timing_once_and_keeps_it(clock):
    """The operator's Timing object travels as is; restored from its kwargs, the knobs are validated once."""
    begun = StageTiming.begin(TIMING, started_at=clock.now)
    given = AgentVaultStreamTrigger(CONN, "t-1", **begun.trigger_arguments())
    assert given.run_timing.timing is begun.timing
    restored = AgentVaultStreamTrigger(**given.serialize()[1])
    assert restored.run_timing == begun and restored.run_timing.timing is not begun.timing
    with pytest.raises(ValueError, match="param 'poll_interval'"):
        AgentVaultStreamTrigger(CONN, "t-1", {**TIMING, "poll_interval": -1}, started_at=1.0, deadline=2.0)


def test_triggers_restored_with_the_same_timing_share_one_and_bad_values_still_fail(clock):
    """A triggerer of thousands of waits keeps one Timing per distinct timing, not one per trigger."""
    kwargs = AgentVaultStreamTrigger(CONN, "t-1", **StageTiming.begin(TIMING, started_at=clock.now)
                                     .trigger_arguments()).serialize()[1]
    first, second = (AgentVaultStreamTrigger(**{**kwargs, "agent_task_id": t}) for t in ("t-1", "t-2"))
    assert first.run_timing.timing is second.run_timing.timing
    other = AgentVaultStreamTrigger(**{**kwargs, "timing": {**kwargs["timing"], "poll_interval": 7.0}})
    assert other.run_timing.timing.poll_interval == 7.0 and other.run_timing.timing is not first.run_timing.timing
    for bad in ({**kwargs["timing"], "verify_attempts": 0}, {**kwargs["timing"], "poll_interval": [1]}):
        with pytest.raises(ValueError, match="param '(verify_attempts|poll_interval)'"):
            AgentVaultStreamTrigger(**{**kwargs, "timing": bad})


def test_what_the_module_loaded_is_out_of_the_collectors_view():
    """A full collection in the triggerer walks what the triggers made, not what Airflow and the models loaded."""
    check = ("import gc; from airflow_agentvault.triggers import agentvault as m; "
             "assert gc.get_freeze_count() > 100_000, gc.get_freeze_count(); "
             "assert not any(o is m.BaseTrigger or o is m.models.Task for o in gc.get_objects())")
    subprocess.run([sys.executable, "-c", check], check=True, timeout=120)  # a fresh process: as the triggerer


# -- task exists -----------------------------------------------------------------------------------


async def test_exists_at_first_check(respx_mock, clock):
    played = script(respx_mock, {"tasks/get": [WORKING]})
    assert await events_of(exists_trigger(clock)) == [
        {"status": "exists", "state": "WORKING", "attempts": 1, "elapsed": 0.0}]
    assert played.methods == ["tasks/get"]
    assert respx_mock.calls.last.request.headers["X-Api-Key"] == SECRET


async def test_exists_after_not_found_with_growing_capped_interval(respx_mock, clock):
    script(respx_mock, {"tasks/get": [NOT_FOUND, NOT_FOUND, NOT_FOUND, WORKING]})
    logger = RecordingLogger()
    events = await events_of(exists_trigger(clock, logger))
    assert events == [{"status": "exists", "state": "WORKING", "attempts": 4, "elapsed": 0.8}]
    assert clock.sleeps == pytest.approx([0.2, 0.3, 0.3])
    assert "Check 1 of 4: task t-1 not visible yet (agent answered: Task not found: t-1); next check in 0.20 s" \
        in logger.text()


async def test_unreachable_agent_is_retried_like_not_found(respx_mock, clock):
    respx_mock.post(RPC).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200, **WORKING)])
    assert (await events_of(exists_trigger(clock)))[0]["status"] == "exists"


async def test_already_finished_task_exists_with_its_state(respx_mock, clock):
    script(respx_mock, {"tasks/get": [COMPLETED]})
    logger = RecordingLogger()
    assert (await events_of(exists_trigger(clock, logger)))[0]["state"] == "COMPLETED"
    assert "already COMPLETED" in logger.text()


async def test_not_found_after_verify_attempts(respx_mock, clock):
    played = script(respx_mock, {"tasks/get": [NOT_FOUND]})
    logger = RecordingLogger()
    events = await events_of(exists_trigger(clock, logger))
    assert events == [{"status": "not_found", "attempts": 4, "elapsed": 0.8,
                       "last_answer": "agent answered: Task not found: t-1"}]
    assert len(played.methods) == 4
    assert "never became visible: 4 checks" in logger.text()


async def test_checks_made_before_deferring_count_towards_the_bound(respx_mock, clock):
    played = script(respx_mock, {"tasks/get": [NOT_FOUND]})
    events = await events_of(exists_trigger(clock, attempts_done=2, started_at=clock.now - 5))
    assert events[0]["status"] == "not_found" and events[0]["attempts"] == 4 and events[0]["elapsed"] == 5.3
    assert len(played.methods) == 2
    assert clock.sleeps == pytest.approx([0.3])  # the interval after check 3, not after check 1


async def test_deadline_bounds_the_checks(respx_mock, clock):
    script(respx_mock, {"tasks/get": [NOT_FOUND]})
    trigger = exists_trigger(clock, timing={**TIMING, "verify_attempts": 100, "verify_interval": 1.0,
                                            "verify_backoff": 1.0, "verify_max_interval": 1.0},
                             deadline=clock.now + 2.5)
    events = await events_of(trigger)
    assert events[0]["status"] == "not_found" and events[0]["attempts"] == 4
    assert clock.now == pytest.approx(trigger.deadline)


async def test_initial_delay_waits_only_what_is_left_of_it(respx_mock, clock):
    script(respx_mock, {"tasks/get": [WORKING]})
    logger = RecordingLogger()
    trigger = exists_trigger(clock, logger, timing={**TIMING, "initial_delay": 10.0}, started_at=clock.now - 4)
    assert (await events_of(trigger))[0]["elapsed"] == 10.0
    assert clock.sleeps == [6.0]
    assert "Waiting 6.0 s (initial delay) before the first check of task t-1" in logger.text()


async def test_initial_delay_is_not_repeated_after_a_check(respx_mock, clock):
    script(respx_mock, {"tasks/get": [WORKING]})
    await events_of(exists_trigger(clock, timing={**TIMING, "initial_delay": 10.0}, attempts_done=1))
    assert clock.sleeps == []


async def test_not_authorised_is_an_error_event_at_once(respx_mock, clock):
    respx_mock.post(RPC).mock(return_value=httpx.Response(401, json={"detail": f"bad key {SECRET}"}))
    events = await events_of(exists_trigger(clock))
    assert events[0]["status"] == "error" and events[0]["error_type"] == "NotAuthorizedError"
    assert events[0]["task_id"] == "t-1" and events[0]["method"] == "tasks/get"
    assert SECRET not in json.dumps(events)
    assert respx_mock.calls.call_count == 1


async def test_incomplete_connection_is_an_error_event(respx_mock, clock, monkeypatch):
    set_connection(monkeypatch, CONN, RPC, auth_type="bearer")
    events = await events_of(exists_trigger(clock))
    assert events[0]["error_type"] == "ConnectionConfigError" and "needs the secret" in events[0]["detail"]
    assert respx_mock.calls.call_count == 0


async def test_endpoint_from_the_agent_card(respx_mock, clock, monkeypatch):
    set_connection(monkeypatch, CONN, "http://agent.test/agent-card.json", password=SECRET)
    card = {"name": "Slow", "url": RPC, "authSchemes": [{"scheme": "apiKey"}]}
    respx_mock.get("http://agent.test/agent-card.json").mock(return_value=httpx.Response(200, json=card))
    script(respx_mock, {"tasks/get": [WORKING]})
    assert (await events_of(exists_trigger(clock)))[0]["status"] == "exists"


# -- stream ------------------------------------------------------------------------------------------


async def test_stream_done_event_transports_the_final_task_and_logs_each_event(respx_mock, clock, capsys):
    played = script(respx_mock, {"tasks/get": [WORKING, COMPLETED], "tasks/sendSubscribe": [FULL_STREAM]})
    events = await events_of(stream_trigger(clock))  # the real Airflow trigger log this time
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "done" and event["task_id"] == "t-1"
    assert event["task"]["state"] == "COMPLETED" and event["task"]["artifacts"][0]["content"] == {"answer": 42}
    assert event["metadata"] == {"delivered_by": "stream", "waited_seconds": 0.0, "events_seen": 4, "sse_attempts": 1}
    assert event["status_message"] is None
    assert played.methods == ["tasks/get", "tasks/sendSubscribe", "tasks/get"]
    log = capsys.readouterr().out
    assert "[t-1] assistant says: done" in log and "[t-1] artifact 't-1-result' (result, 13 bytes)" in log
    assert "delivered by stream" in log
    assert SECRET not in log and SECRET not in json.dumps(events)
    result = event_to_outcome(event, agent_url=RPC)
    assert result["state"] == "COMPLETED" and result["text"] == "done"
    assert result["metadata"]["delivered_by"] == "stream"


async def test_stream_does_not_judge_a_failed_task(respx_mock, clock):
    failed = rpc_result(task_json("t-1", "FAILED", metadata={"error": "disk full"}))
    script(respx_mock, {"tasks/get": [failed]})
    event = (await events_of(stream_trigger(clock)))[0]
    assert event["status"] == "done" and event["metadata"]["delivered_by"] == "already-finished"
    with pytest.raises(errors.TaskFailedError, match="disk full") as info:
        event_to_outcome(event, agent_url=RPC)
    assert info.value.agent_message == "disk full" and info.value.task_id == "t-1"


async def test_stream_timeout_is_an_error_event_raised_as_wait_timeout(respx_mock, clock):
    script(respx_mock, {"tasks/get": [WORKING], "tasks/sendSubscribe": [NOT_FOUND]})
    trigger = stream_trigger(clock, timing={**TIMING, "sse_attempts": 1, "overall_timeout": 3.0},
                             deadline=clock.now + 3)
    event = (await events_of(trigger))[0]
    assert event["status"] == "error" and event["error_type"] == "WaitTimeoutError"
    assert "overall timeout of 3 s" in event["detail"]
    with pytest.raises(errors.WaitTimeoutError, match="overall timeout of 3 s") as info:
        event_to_outcome(event, agent_url=RPC)
    assert info.value.task_id == "t-1" and info.value.method == "tasks/get"


async def test_stream_after_a_triggerer_move_resumes_from_tasks_get(respx_mock, clock):
    """A re-created trigger starts over; the deadline stays the original one and the result is whole."""
    script(respx_mock, {"tasks/get": [WORKING, WORKING, COMPLETED],
                        "tasks/sendSubscribe": [rpc_error(-32001, "Task not found: t-1")]})
    first = stream_trigger(clock, timing={**TIMING, "sse_attempts": 1})
    moved = wired(AgentVaultStreamTrigger(**first.serialize()[1]), clock)
    event = (await events_of(moved))[0]
    assert moved.deadline == first.deadline
    assert event["metadata"]["delivered_by"] == "polling"
    assert len(event_to_outcome(event, agent_url=RPC)["artifacts"]) == 1


async def test_a_task_the_worker_saw_is_lost_when_the_agent_forgets_it_even_if_the_first_look_fails(respx_mock,
                                                                                                    clock):
    """The worker saw the task before deferring; the agent restarted without it: lost after the grace, not polled."""
    script(respx_mock, {"tasks/get": [BUSY, NOT_FOUND], "tasks/sendSubscribe": [NOT_FOUND]})
    trigger = stream_trigger(clock, timing={**TIMING, "sse_attempts": 1, "lost_grace": 4.0}, known_state="SUBMITTED")
    event = (await events_of(trigger))[0]
    assert event["status"] == "error" and event["error_type"] == "TaskLostError", event
    assert clock.now - trigger.run_timing.started_at < TIMING["overall_timeout"]
    assert AgentVaultStreamTrigger(**trigger.serialize()[1]).known_state == "SUBMITTED"


async def test_a_task_nobody_saw_is_not_declared_lost(respx_mock, clock):
    """Without the worker's sighting, "not found" may still mean "not visible yet": the wait runs to its bound."""
    script(respx_mock, {"tasks/get": [BUSY, NOT_FOUND], "tasks/sendSubscribe": [NOT_FOUND]})
    trigger = stream_trigger(clock, timing={**TIMING, "sse_attempts": 1, "lost_grace": 4.0, "overall_timeout": 20.0},
                             deadline=clock.now + 20)
    event = (await events_of(trigger))[0]
    assert event["status"] == "error" and event["error_type"] == "WaitTimeoutError", event


# -- kill and cleanup ----------------------------------------------------------------------------------


async def test_on_kill_cancels_the_remote_task(respx_mock, clock):
    played = script(respx_mock, {"tasks/cancel": [rpc_result({"success": True, "message": None})]})
    logger = RecordingLogger()
    await asyncio.wait_for(stream_trigger(clock, logger).on_kill(), WAIT_BOUND)
    assert played.methods == ["tasks/cancel"]
    assert json.loads(respx_mock.calls.last.request.content)["params"] == {"id": "t-1"}
    assert respx_mock.calls.last.request.headers["X-Api-Key"] == SECRET
    assert "Asked the agent to cancel task t-1: success=True" in logger.text()


async def test_on_kill_leaves_the_task_when_switched_off(respx_mock, clock):
    await asyncio.wait_for(stream_trigger(clock, cancel_on_kill=False).on_kill(), WAIT_BOUND)
    assert respx_mock.calls.call_count == 0


async def test_on_kill_failure_is_logged_not_raised(respx_mock, clock):
    respx_mock.post(RPC).mock(side_effect=httpx.ConnectError("refused"))
    logger = RecordingLogger()
    await asyncio.wait_for(stream_trigger(clock, logger).on_kill(), WAIT_BOUND)
    assert "Could not cancel agent task t-1" in logger.text()


async def test_cleanup_never_cancels(respx_mock, clock):
    await asyncio.wait_for(stream_trigger(clock).cleanup(), WAIT_BOUND)
    assert respx_mock.calls.call_count == 0


async def test_run_cancelled_mid_stream_does_not_cancel_the_remote_task(respx_mock, clock):
    """What the triggerer does when a trigger moves: cancel run(), then cleanup(). No tasks/cancel."""
    played = script(respx_mock, {"tasks/get": [WORKING], "tasks/sendSubscribe": [NOT_FOUND]})
    trigger = stream_trigger(clock, timing={**TIMING, "sse_attempts": 1})
    reached_polling = asyncio.Event()

    async def sleep(seconds: float) -> None:
        reached_polling.set()
        await asyncio.Event().wait()  # parked until cancelled, like a real sleep

    trigger._sleep = sleep
    runner = asyncio.ensure_future(events_of(trigger))
    await asyncio.wait_for(reached_polling.wait(), WAIT_BOUND)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await trigger.cleanup()
    assert "tasks/cancel" not in played.methods


# -- event_to_outcome ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["TaskNotFoundError", "NotAuthorizedError", "AgentUnreachableError",
                                  "StreamDisconnectedError", "ProtocolViolationError", "WaitTimeoutError"])
def test_error_events_are_raised_as_the_class_they_name(name):
    event = {"status": "error", "error_type": name, "detail": "what happened", "task_id": "t-1", "method": "tasks/get"}
    with pytest.raises(ERROR_TYPES[name]) as info:
        event_to_outcome(event, agent_url="http://user:pw@agent.test/a2a/")
    assert type(info.value) is ERROR_TYPES[name]
    assert str(info.value) == "what happened [agent http://agent.test/a2a/, method tasks/get, task t-1]"


def test_error_event_round_trip_keeps_code_and_agent_message():
    original = errors.InputRequiredError("needs input", agent_message="Which decade?", task_id="t-1",
                                         method="tasks/get")
    with pytest.raises(errors.InputRequiredError) as info:
        event_to_outcome(json.loads(json.dumps(error_event(original))), agent_url=RPC)
    assert info.value.agent_message == "Which decade?"
    coded = errors.TaskNotFoundError("agent answered: Task not found: t-1", code=-32001, task_id="t-1")
    with pytest.raises(errors.TaskNotFoundError) as info:
        event_to_outcome(error_event(coded), agent_url=RPC)
    assert info.value.code == -32001


def test_unknown_error_type_is_raised_as_the_base_error_naming_it():
    event = {"status": "error", "error_type": "ConnectionConfigError", "detail": "connection 'x': 'host' must hold"}
    with pytest.raises(errors.AgentVaultError, match="ConnectionConfigError: connection 'x'") as info:
        event_to_outcome(event, agent_url=RPC)
    assert type(info.value) is errors.AgentVaultError


@pytest.mark.parametrize(
    "event",
    [
        None,
        "done",
        {},
        {"status": "exists", "state": "WORKING"},
        {"status": "done"},
        {"status": "done", "task": {"state": "COMPLETED"}},
        {"status": "done", "task": {"id": "t-1", "state": "finished"}},
        {"status": "error", "detail": "no type"},
        {"status": "error", "error_type": 42, "detail": "x"},
    ],
)
def test_malformed_events_are_protocol_violations(event):
    with pytest.raises(errors.ProtocolViolationError):
        event_to_outcome(event, agent_url=RPC)


def test_done_event_respects_the_result_size_limit():
    big = task_json("t-1", "COMPLETED", agent_text="ok",
                    artifacts=[{"id": "a", "type": "result", "content": {"blob": "x" * 5000}}])
    event = {"status": "done", "task_id": "t-1", "task": big, "metadata": {"delivered_by": "stream"}}
    with pytest.raises(errors.ResultTooLargeError):
        event_to_outcome(event, agent_url=RPC, max_result_bytes=2000)
    assert event_to_outcome(event, agent_url=RPC, max_result_bytes=2000, truncate=True)["metadata"]["truncated"]


async def test_triggers_register_a_fetched_oauth2_token_with_the_masker(monkeypatch, respx_mock):
    """Tokens fetched in the triggerer are masked as they arrive, without blocking the event loop."""
    from unittest import mock

    from airflow_agentvault.hooks import agentvault as hook_module

    token_url = RPC.split("/a2a/")[0] + "/oauth/token"
    conn = {"conn_type": "agentvault", "host": RPC, "login": "client-1", "password": SECRET,
            "extra": {"auth_type": "oauth2", "token_url": "/oauth/token"}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    respx_mock.post(token_url).mock(return_value=httpx.Response(200, json={"access_token": "at-trigger-1"}))
    respx_mock.post(RPC).mock(return_value=httpx.Response(200, **rpc_result(task_json("t-1", "WORKING"))))
    masked = mock.AsyncMock()
    monkeypatch.setattr(hook_module, "amask_secret", masked)
    client = await hook_module.AgentVaultHook(CONN).aget_client()
    async with client:
        await asyncio.wait_for(client.get("t-1"), WAIT_BOUND)
    masked.assert_any_await(SECRET)
    masked.assert_any_await("at-trigger-1")
