"""The task-exists sensor in poke and reschedule modes, HTTP mocked by requests-mock."""

from __future__ import annotations

import logging

import pytest

from airflow_agentvault.compat import AirflowFailException, AirflowRescheduleException
from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor

from fakes import FakeTaskStateStore, make_context, rpc_error, rpc_result, set_connection, task_json

RPC = "http://agent.test/a2a/"
NOT_FOUND = rpc_error(-32001, "Task not found: t-1")


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    set_connection(monkeypatch, "agentvault_default", RPC)


def sensor(mode: str = "poke", **timing):
    timing = {"verify_interval": 0.01, "verify_max_interval": 0.02, **timing}
    return AgentVaultTaskExistsSensor(task_id="visible", agent_task_id="t-1", timing=timing, mode=mode)


def context(store=None, try_number=1):
    ctx = make_context(store, try_number)
    ctx["ti"].get_first_reschedule_date.return_value = None
    return ctx


def test_returns_the_observed_state_once_visible(requests_mock):
    requests_mock.post(RPC, [NOT_FOUND, NOT_FOUND, rpc_result(task_json("t-1", "WORKING"))])
    assert sensor().execute(context()) == "WORKING"
    assert requests_mock.call_count == 3


def test_already_terminal_task_is_reported(requests_mock, capsys):
    requests_mock.post(RPC, **rpc_result(task_json("t-1", "COMPLETED")))
    assert sensor().execute(context()) == "COMPLETED"
    assert "already COMPLETED; its result is taken without streaming" in capsys.readouterr().out


def test_connection_errors_are_retried_within_the_bound(requests_mock):
    import requests

    requests_mock.post(RPC, [{"exc": requests.ConnectionError("Connection refused")},
                             rpc_result(task_json("t-1", "SUBMITTED"))])
    assert sensor().execute(context()) == "SUBMITTED"


def test_gives_up_after_the_attempts_with_a_message_that_explains(requests_mock):
    requests_mock.post(RPC, **NOT_FOUND)
    with pytest.raises(AirflowFailException) as info:
        sensor(verify_attempts=4).execute(context())
    message = str(info.value)
    assert requests_mock.call_count == 4
    assert "4 checks of tasks/get" in message and "last answer: agent answered: Task not found: t-1" in message
    assert "Likely causes" in message and RPC in message


@pytest.mark.parametrize(
    "answer",
    [{"status_code": 401, "json": {"detail": "no"}, "headers": {"Content-Type": "application/json"}},
     {"text": "<html>", "headers": {"Content-Type": "text/html"}}],
)
def test_auth_and_protocol_errors_fail_at_once(requests_mock, answer):
    requests_mock.post(RPC, **answer)
    with pytest.raises(AirflowFailException, match="Cannot verify task t-1"):
        sensor(verify_attempts=10).execute(context())
    assert requests_mock.call_count == 1


def test_interval_grows_and_is_capped():
    """The sensor's next poke interval is the existence wait's: growing by the backoff, capped."""
    from airflow_agentvault.protocol import errors
    from airflow_agentvault.protocol.follow import VisibilityWait
    from airflow_agentvault.protocol.timing import Timing

    timing = Timing.parse({"verify_interval": 0.5, "verify_backoff": 2, "verify_max_interval": 3, "verify_attempts": 9})
    wait = VisibilityWait("t-1", timing, RPC, started=0.0, deadline=1e9)
    intervals = []
    for _ in range(5):
        wait.attempts += 1
        intervals.append(wait.missed(errors.TaskNotFoundError("Task not found"), logging.getLogger("t"), now=0.0))
    assert intervals == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_reschedule_mode_keeps_the_bound_across_reschedules(requests_mock):
    requests_mock.post(RPC, **NOT_FOUND)
    store = FakeTaskStateStore()
    for _ in range(2):
        with pytest.raises(AirflowRescheduleException):
            sensor("reschedule", verify_attempts=3).execute(context(store))
    with pytest.raises(AirflowFailException, match="3 checks"):
        sensor("reschedule", verify_attempts=3).execute(context(store))
    assert requests_mock.call_count == 3


def test_an_airflow_retry_gets_a_fresh_bound(requests_mock):
    requests_mock.post(RPC, **NOT_FOUND)
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException):
        sensor(verify_attempts=2).execute(context(store, try_number=1))
    requests_mock.post(RPC, **rpc_result(task_json("t-1", "WORKING")))
    assert sensor(verify_attempts=2).execute(context(store, try_number=2)) == "WORKING"


def test_initial_delay_in_reschedule_mode_reschedules_first(requests_mock, monkeypatch):
    from airflow_agentvault.sensors import agentvault as sensor_module

    requests_mock.post(RPC, **rpc_result(task_json("t-1", "WORKING")))
    store = FakeTaskStateStore()
    monkeypatch.setattr(sensor_module, "clock", lambda: 1000.0)
    first = sensor("reschedule", initial_delay=30)
    with pytest.raises(AirflowRescheduleException):
        first.execute(context(store))
    assert requests_mock.call_count == 0 and first.poke_interval == 30
    monkeypatch.setattr(sensor_module, "clock", lambda: 1030.0)  # the reschedule comes when the delay is over
    assert sensor("reschedule", initial_delay=30).execute(context(store)) == "WORKING"
    assert requests_mock.call_count == 1


def test_the_initial_delay_is_one_log_line_and_one_wait(requests_mock, capsys):
    requests_mock.post(RPC, **rpc_result(task_json("t-1", "WORKING")))
    assert sensor(initial_delay=0.01).execute(context()) == "WORKING"
    assert capsys.readouterr().out.count("(initial delay) before the first check") == 1


def test_the_next_poke_waits_what_the_wait_decided(requests_mock):
    """The growing interval, or the agent's Retry-After when longer; Airflow's own backoff stays off."""
    busy = {"status_code": 503, "headers": {"Retry-After": "7"}, "text": "busy"}
    requests_mock.post(RPC, [NOT_FOUND, busy])
    op = sensor("reschedule", verify_interval=0.5, verify_backoff=2, verify_max_interval=3)
    store = FakeTaskStateStore()
    with pytest.raises(AirflowRescheduleException):
        op.execute(context(store))
    assert op.poke_interval == 0.5
    with pytest.raises(AirflowRescheduleException):
        op.execute(context(store))
    assert op.poke_interval == 7 and op.exponential_backoff is False
    assert all(value is not None for value in store.data.values())


def test_airflow_s_exponential_backoff_is_refused():
    with pytest.raises(ValueError, match="verify_backoff"):
        AgentVaultTaskExistsSensor(task_id="v", agent_task_id="t-1", exponential_backoff=True)


def test_a_spent_bound_is_a_typed_timeout_naming_agent_task_and_causes(requests_mock):
    from airflow_agentvault.protocol import errors

    requests_mock.post(RPC, **NOT_FOUND)
    with pytest.raises(AirflowFailException) as info:
        sensor(verify_attempts=2).execute(context())
    assert isinstance(info.value.__cause__, errors.WaitTimeoutError)
    assert "t-1" in str(info.value) and RPC in str(info.value) and "Likely causes" in str(info.value)


def test_bad_timing_names_the_param(requests_mock):
    with pytest.raises(AirflowFailException, match="param 'verify_attempts'"):
        sensor(verify_attempts=0).execute(context())
    assert requests_mock.call_count == 0
