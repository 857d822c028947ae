"""The sync and async followers play the same scenario table and must reach the same outcome, in the same words."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentClient, AsyncTaskFollower
from airflow_agentvault.protocol.client import AgentClient, TaskFollower
from airflow_agentvault.protocol.follow import Follower, FollowOutcome
from airflow_agentvault.protocol.timing import Timing

from scenarios import (
    RPC,
    SAYS_DONE,
    SCENARIOS,
    TIMING,
    WORKING,
    FakeClock,
    RecordingLogger,
    Scenario,
    Script,
    status,
    stream,
)

WAIT_BOUND = 10.0  # seconds of real time any async scenario may take (they take milliseconds)


@dataclass
class Run:
    outcome: FollowOutcome | None
    error: BaseException | None
    logger: RecordingLogger
    script: Script
    clock: FakeClock


def timing_of(scenario: Scenario) -> Timing:
    return Timing.parse({**TIMING, **scenario.timing})


def run_sync(scenario: Scenario, requests_mock) -> Run:
    script, clock, logger = Script(scenario.replies), FakeClock(), RecordingLogger()
    requests_mock.post(RPC, content=script.requests_mock_callback())
    timing = timing_of(scenario)
    follower = TaskFollower(AgentClient(RPC), timing, logger=logger, clock=clock.time, sleep=clock.sleep)
    outcome = error = None
    try:
        # an absolute epoch deadline works here too, given the matching clock
        outcome = follower.follow("t-1", deadline=clock.now + timing.overall_timeout)
    except Exception as exc:  # noqa: BLE001 - the scenario says which error is expected
        error = exc
    return Run(outcome, error, logger, script, clock)


async def run_async(scenario: Scenario, respx_mock) -> Run:
    script, clock, logger = Script(scenario.replies), FakeClock(), RecordingLogger()
    respx_mock.post(RPC).mock(side_effect=script.respx_side_effect())
    timing = timing_of(scenario)
    outcome = error = None
    async with AsyncAgentClient(RPC) as client:
        follower = AsyncTaskFollower(client, timing, logger=logger, clock=clock.time, sleep=clock.asleep)
        try:
            outcome = await asyncio.wait_for(
                follower.follow("t-1", deadline=clock.now + timing.overall_timeout), WAIT_BOUND
            )
        except Exception as exc:  # noqa: BLE001
            error = exc
    return Run(outcome, error, logger, script, clock)


def check(scenario: Scenario, run: Run) -> None:
    if scenario.error is not None:
        assert isinstance(run.error, scenario.error), run.error
        if scenario.error_match:
            assert scenario.error_match in str(run.error)
    else:
        assert run.error is None, run.error
        assert run.outcome.path == scenario.path
        assert run.outcome.task.state.value == scenario.state
        assert run.outcome.metadata() == scenario.metadata
        assert run.outcome.status_message == scenario.status_message
    if scenario.methods is not None:
        assert run.script.methods == scenario.methods


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_sync_follower(scenario, requests_mock):
    check(scenario, run_sync(scenario, requests_mock))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
async def test_async_follower(scenario, respx_mock):
    check(scenario, await run_async(scenario, respx_mock))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
async def test_both_followers_tell_the_same_story(scenario, requests_mock, respx_mock):
    sync, async_ = run_sync(scenario, requests_mock), await run_async(scenario, respx_mock)
    assert async_.logger.lines == sync.logger.lines
    assert async_.script.methods == sync.script.methods
    assert async_.clock.sleeps == sync.clock.sleeps
    assert type(async_.error) is type(sync.error)
    assert str(async_.error) == str(sync.error)


async def test_the_story_names_each_event_and_the_path(respx_mock):
    run = await run_async(SCENARIOS[0], respx_mock)
    text = run.logger.text()
    assert "Subscribing to task t-1 events (attempt 1 of 3)" in text
    assert "[t-1] assistant says: done" in text
    assert "[t-1] artifact 't-1-result' (result, 13 bytes)" in text
    assert ("Task t-1 ended COMPLETED; result delivered by stream after 0.00 s "
            "(4 events, 1 subscription attempts)") in text


async def test_async_existence_check_counts_and_finds(respx_mock):
    script = Script({"tasks/get": [SCENARIOS[1].replies["tasks/get"][0], SCENARIOS[0].replies["tasks/get"][0]]})
    respx_mock.post(RPC).mock(side_effect=script.respx_side_effect())
    async with AsyncAgentClient(RPC) as client:
        follower = Follower(client.agent, Timing())
        wait = follower.visibility_wait("t-1")
        assert await client.run(follower.check_visible(wait)) is None
        task = await client.run(follower.check_visible(wait))
    assert task is not None and task.state.value == "WORKING" and wait.attempts == 2


async def test_on_event_sees_every_event(respx_mock):
    seen: list[Any] = []
    respx_mock.post(RPC).mock(side_effect=Script(SCENARIOS[0].replies).respx_side_effect())
    clock = FakeClock()
    async with AsyncAgentClient(RPC) as client:
        follower = AsyncTaskFollower(client, Timing.parse(TIMING), logger=RecordingLogger(), on_event=seen.append,
                                     clock=clock.time, sleep=clock.asleep)
        await asyncio.wait_for(follower.follow("t-1"), WAIT_BOUND)
    assert [type(e).__name__ for e in seen] == [
        "TaskStatusEvent", "TaskMessageEvent", "TaskArtifactEvent", "TaskStatusEvent"]


def _seen_completed():
    from airflow_agentvault.protocol.models import Task, parse_model

    from scenarios import task_json

    return parse_model(Task, task_json("t-1", "COMPLETED"))


def test_sync_follow_takes_a_task_just_seen_without_asking_again(requests_mock):
    """The compact stage has just read the task while checking it exists: no second tasks/get."""
    route = requests_mock.post(RPC, status_code=500)
    follower = TaskFollower(AgentClient(RPC), Timing.parse(TIMING), logger=RecordingLogger())
    outcome = follower.follow("t-1", seen=_seen_completed())
    assert (outcome.path, outcome.task.state.value, route.call_count) == ("already-finished", "COMPLETED", 0)


async def test_async_follow_takes_a_task_just_seen_without_asking_again(respx_mock):
    route = respx_mock.post(RPC).respond(500)
    async with AsyncAgentClient(RPC) as client:
        follower = AsyncTaskFollower(client, Timing.parse(TIMING), logger=RecordingLogger())
        outcome = await asyncio.wait_for(follower.follow("t-1", seen=_seen_completed()), WAIT_BOUND)
    assert (outcome.path, outcome.task.state.value, route.call_count) == ("already-finished", "COMPLETED", 0)


class TickingClock:
    """A clock that moves one second every time it is read: time passes while a stream keeps talking."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        self.now += 1.0
        return self.now


def test_overall_timeout_bounds_a_stream_that_keeps_talking(requests_mock):
    chatter = [status("WORKING")] + [SAYS_DONE] * 50 + [status("COMPLETED")]
    script = Script({"tasks/get": [WORKING], "tasks/sendSubscribe": [stream(*chatter)]})
    requests_mock.post(RPC, content=script.requests_mock_callback())
    clock = TickingClock()
    follower = TaskFollower(AgentClient(RPC), Timing.parse({"overall_timeout": 10}), clock=clock.time)
    with pytest.raises(errors.WaitTimeoutError, match="still streaming after") as info:
        follower.follow("t-1")
    events = int(str(info.value).split("still streaming after ")[1].split()[0])
    assert events < 10 and clock.now < 30
