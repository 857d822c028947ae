"""Deferrable mode of the sensor and the stream operator: when they defer, and how events map back."""

from __future__ import annotations

import json

import pytest

from airflow_agentvault.compat import AirflowFailException, TaskDeferred
from airflow_agentvault.operators.agentvault import AgentVaultStreamOperator
from airflow_agentvault.protocol import errors
from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor
from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger, AgentVaultTaskExistsTrigger

from fakes import make_context, rpc_error, rpc_result, set_connection, task_json

RPC = "http://agent.test/a2a/"
SECRET = "sk-deferred-secret-42"
COMPLETED = task_json("t-1", "COMPLETED", agent_text="done",
                      artifacts=[{"id": "t-1-result", "type": "result", "content": {"answer": 42}}])


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    set_connection(monkeypatch, "agentvault_default", RPC, password=SECRET)


def sensor(**timing):
    return AgentVaultTaskExistsSensor(task_id="visible", agent_task_id="t-1", deferrable=True,
                                      timing={"verify_interval": 0.01, **timing})


def stream(**kwargs):
    return AgentVaultStreamOperator(task_id="stream", agent_task_id="t-1", deferrable=True, **kwargs)


def test_deferrable_defaults_to_the_airflow_config(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert AgentVaultStreamOperator(task_id="s", agent_task_id="t").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert AgentVaultTaskExistsSensor(task_id="v", agent_task_id="t").deferrable is False


def test_sensor_visible_at_once_costs_no_deferral(requests_mock):
    requests_mock.post(RPC, **rpc_result(task_json("t-1", "WORKING")))
    assert sensor().execute(make_context()) == "WORKING"


def test_sensor_defers_after_one_check_without_credentials_in_the_trigger(requests_mock):
    requests_mock.post(RPC, **rpc_error(-32001, "Task not found: t-1"))
    with pytest.raises(TaskDeferred) as info:
        sensor().execute(make_context())
    trigger = info.value.trigger
    assert isinstance(trigger, AgentVaultTaskExistsTrigger) and info.value.method_name == "execute_complete"
    classpath, kwargs = trigger.serialize()
    assert kwargs["attempts_done"] == 1 and kwargs["deadline"] > kwargs["started_at"]
    assert SECRET not in json.dumps(kwargs) and requests_mock.call_count == 1


def test_sensor_with_initial_delay_defers_without_checking(requests_mock):
    with pytest.raises(TaskDeferred) as info:
        sensor(initial_delay=10).execute(make_context())
    assert info.value.trigger.serialize()[1]["attempts_done"] == 0
    assert requests_mock.call_count == 0


def test_sensor_execute_complete_maps_events():
    op = sensor(verify_attempts=5)
    assert op.execute_complete(make_context(), {"status": "exists", "state": "WORKING"}) == "WORKING"
    with pytest.raises(AirflowFailException, match="5 checks of tasks/get over 3.0 s.*last answer: nope"):
        op.execute_complete(make_context(), {"status": "not_found", "attempts": 5, "elapsed": 3.0,
                                             "last_answer": "nope"})
    with pytest.raises(AirflowFailException, match="Cannot verify task t-1.*HTTP 401"):
        op.execute_complete(make_context(), {"status": "error", "error_type": "NotAuthorizedError",
                                             "detail": "agent refused the request with HTTP 401", "task_id": "t-1"})


def test_stream_finished_task_costs_no_deferral(requests_mock):
    requests_mock.post(RPC, **rpc_result(COMPLETED))
    result = stream().execute(make_context())
    assert result["metadata"]["delivered_by"] == "already-finished"


def test_stream_defers_with_an_absolute_deadline_and_no_credentials(requests_mock):
    requests_mock.post(RPC, **rpc_result(task_json("t-1", "WORKING")))
    with pytest.raises(TaskDeferred) as info:
        stream(timing={"overall_timeout": 60}, cancel_on_kill=False).execute(make_context())
    trigger = info.value.trigger
    assert isinstance(trigger, AgentVaultStreamTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["conn_id"] == "agentvault_default" and kwargs["cancel_on_kill"] is False
    assert kwargs["timing"]["overall_timeout"] == 60 and kwargs["deadline"] > 1e9
    assert SECRET not in json.dumps(kwargs)


def test_stream_execute_complete_gives_the_same_result_as_the_sync_path(requests_mock):
    event = {"status": "done", "task_id": "t-1", "task": COMPLETED,
             "metadata": {"delivered_by": "stream", "waited_seconds": 1.0, "events_seen": 4, "sse_attempts": 1},
             "status_message": None}
    deferred = stream().execute_complete(make_context(), event)
    requests_mock.post(RPC, **rpc_result(COMPLETED))
    sync = AgentVaultStreamOperator(task_id="stream", agent_task_id="t-1").execute(make_context())
    assert {k: v for k, v in deferred.items() if k != "metadata"} == {k: v for k, v in sync.items() if k != "metadata"}
    assert deferred["metadata"]["delivered_by"] == "stream"


@pytest.mark.parametrize(
    "event, error",
    [
        ({"status": "done", "task_id": "t-1", "task": task_json("t-1", "FAILED", metadata={"error": "oom"}),
          "metadata": {}, "status_message": None}, errors.TaskFailedError),
        ({"status": "done", "task_id": "t-1", "task": task_json("t-1", "INPUT_REQUIRED", agent_text="Which year?"),
          "metadata": {}}, errors.InputRequiredError),
        ({"status": "error", "error_type": "WaitTimeoutError", "detail": "gave up", "task_id": "t-1"},
         errors.WaitTimeoutError),
        ({"status": "weird"}, errors.ProtocolViolationError),
    ],
)
def test_stream_execute_complete_maps_failures_to_typed_errors(event, error):
    with pytest.raises(error):
        stream().execute_complete(make_context(), event)


def test_a_final_task_too_big_for_the_event_is_read_again_by_the_worker(requests_mock):
    big = task_json("t-1", "COMPLETED", agent_text="done",
                    artifacts=[{"id": "a", "type": "result", "content": {"blob": "x" * 100_000}}])
    requests_mock.post(RPC, **rpc_result(big))
    event = {"status": "done", "task_id": "t-1", "metadata": {"delivered_by": "stream"}, "status_message": None}
    result = stream().execute_complete(make_context(), event)
    assert result["artifacts"][0]["content"] == {"blob": "x" * 100_000}
    assert requests_mock.last_request.json()["method"] == "tasks/get"
