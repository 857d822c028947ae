"""Our client and follower against a real agentvault-server-sdk 0.1.1 agent (its own venv)."""

from __future__ import annotations

import pytest

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.client import AgentClient, TaskFollower
from airflow_agentvault.protocol.follow import PATH_STREAM
from airflow_agentvault.protocol.models import Message, TaskState, TextPart
from airflow_agentvault.protocol.result import outcome_of
from airflow_agentvault.protocol.timing import Timing

pytestmark = pytest.mark.integration

TIMING = Timing(sse_retry_delay=0.05, poll_interval=0.05, read_timeout=10, overall_timeout=30)


@pytest.fixture
def client(agentvault_sdk_agent):
    return AgentClient(agentvault_sdk_agent.rpc_url, connect_timeout=2, read_timeout=5)


def say(text: str) -> Message:
    return Message(role="user", parts=[TextPart(content=text)])


def test_card_send_and_get(client, agentvault_sdk_agent):
    card = client.fetch_card(agentvault_sdk_agent.card_url)
    assert card.name and card.url.endswith("/a2a/")
    task_id = client.send(say("hello sleep=0.2"))
    task = client.get(task_id)
    assert task.id == task_id and task.state in (TaskState.SUBMITTED, TaskState.WORKING)
    assert task.messages[0].text == "hello sleep=0.2"


def test_stream_to_completion_returns_the_full_result(client):
    task_id = client.send(say("stream me delay=0.5 sleep=0.5"))
    outcome = TaskFollower(client, TIMING).follow(task_id)
    assert outcome.path == PATH_STREAM
    assert outcome.events_seen >= 3
    result = outcome_of(outcome.task, agent_url=client.rpc_url, metadata=outcome.metadata())
    assert result["state"] == "COMPLETED"
    assert result["artifacts"][0]["content"]["answer"] == "stream me delay=0.5 sleep=0.5"


def test_subscribe_to_unknown_task_is_task_not_found(client):
    with pytest.raises(errors.TaskNotFoundError, match="Task not found: no-such-task"):
        list(client.subscribe("no-such-task"))


def test_failed_task_raises_with_the_agents_reason(client):
    task_id = client.send(say("please fail sleep=0.2"))
    outcome = TaskFollower(client, TIMING).follow(task_id)
    with pytest.raises(errors.TaskFailedError, match="sdk agent failed on purpose"):
        outcome_of(outcome.task, agent_url=client.rpc_url, status_message=outcome.status_message)


def test_cancel_running_then_finished(client):
    task_id = client.send(say("long job sleep=30"))
    assert client.cancel(task_id).success is True
    outcome = TaskFollower(client, TIMING).follow(task_id)
    assert outcome.task.state is TaskState.CANCELED
    assert client.cancel(task_id).success is False
