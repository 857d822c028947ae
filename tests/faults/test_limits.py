"""
Size and time limits against a real misbehaving agent on loopback (:mod:`faults.misbehaving`), both runners.

A stream that trickles bytes or sends events forever ends at the overall deadline with WaitTimeoutError; a
stream event that never ends is dropped at ``max_event_bytes`` and the task read with ``get`` (one
subscription, no second); an answer that never ends stops at ``max_answer_bytes`` with AnswerTooLargeError.
Every case names the agent and the task, and ends within its bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentClient, AsyncTaskFollower
from airflow_agentvault.protocol.client import AgentClient, TaskFollower
from airflow_agentvault.protocol.follow import PATH_POLLING
from airflow_agentvault.protocol.timing import Timing

from faults.misbehaving import MisbehavingAgent
from faults.test_fault_suite import MARGIN

pytestmark = pytest.mark.integration

TIMING = Timing(sse_attempts=2, sse_retry_delay=0.05, poll_interval=0.05, read_timeout=1.0, overall_timeout=2.0)
LIMITS = {"max_event_bytes": 256 * 1024, "max_answer_bytes": 1024 * 1024, "read_timeout": 2.0}
RUNNERS = ("sync", "async")


@pytest.fixture(scope="module")
def agent() -> Iterator[MisbehavingAgent]:
    with MisbehavingAgent() as server:
        yield server


def follow(agent: MisbehavingAgent, behaviour: str, runner: str) -> tuple[Any, float]:
    """Follow task ``t`` at ``behaviour`` with ``runner``: (the outcome or the error, seconds taken)."""
    url = agent.url(behaviour)
    started = time.monotonic()
    try:
        if runner == "sync":
            outcome: Any = TaskFollower(AgentClient(url, **LIMITS), TIMING).follow("t")
        else:
            async def run() -> Any:
                async with AsyncAgentClient(url, **LIMITS) as client:
                    return await AsyncTaskFollower(client, TIMING).follow("t")
            outcome = asyncio.run(asyncio.wait_for(run(), TIMING.overall_timeout + 2 * MARGIN))
    except errors.AgentVaultError as exc:
        outcome = exc
    return outcome, time.monotonic() - started


def assert_names(error: Any, agent: MisbehavingAgent, behaviour: str) -> None:
    assert isinstance(error, errors.AgentVaultError), error
    assert error.task_id == "t" and error.agent_url == agent.url(behaviour), str(error)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("behaviour", ["trickle", "endless"])
def test_a_stream_that_never_ends_ends_at_the_deadline(agent, behaviour, runner):
    error, took = follow(agent, behaviour, runner)
    assert isinstance(error, errors.WaitTimeoutError) and "still streaming" in error.detail, error
    assert_names(error, agent, behaviour)
    assert took < TIMING.overall_timeout + MARGIN


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_event_that_never_ends_drops_the_stream_and_the_task_is_read(agent, runner):
    before = agent.calls["huge-event", "tasks/sendSubscribe"]
    agent.calls["huge-event", "tasks/get"] = 0
    outcome, took = follow(agent, "huge-event", runner)
    assert not isinstance(outcome, Exception), outcome
    assert outcome.path == PATH_POLLING and outcome.task.state.value == "COMPLETED"
    assert agent.calls["huge-event", "tasks/sendSubscribe"] == before + 1  # never a second subscription
    assert took < TIMING.overall_timeout + MARGIN


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_answer_that_never_ends_is_answer_too_large(agent, runner):
    error, took = follow(agent, "huge-answer", runner)
    assert isinstance(error, errors.AnswerTooLargeError) and "max_answer_bytes" in str(error), error
    assert_names(error, agent, "huge-answer")
    assert took < TIMING.overall_timeout + MARGIN
