"""Initiate and stream operators, called directly with HTTP mocked by requests-mock."""

from __future__ import annotations

import json

import pytest

from airflow_agentvault.compat import AirflowFailException
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator
from airflow_agentvault.protocol import errors

from fakes import (
    SSE_HEADERS,
    FakeTaskStateStore,
    make_context,
    rpc_error,
    rpc_result,
    set_connection,
    sse_body,
    task_json,
)

RPC = "http://agent.test/a2a/"
FAST = {"sse_retry_delay": 0.01, "poll_interval": 0.01, "verify_interval": 0.01, "overall_timeout": 5}
SECRET = "sk-live-0123456789abcdef"


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    set_connection(monkeypatch, "agentvault_default", RPC, password=SECRET)


def methods(requests_mock) -> list[str]:
    return [r.json()["method"] for r in requests_mock.request_history]


def by_method(responses: dict[str, list[dict]]):
    """A requests-mock callback answering each JSON-RPC method from its own queue of responses."""

    def respond(request, context):
        queue = responses[request.json()["method"]]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        context.headers = answer.get("headers", {"Content-Type": "application/json"})
        context.status_code = answer.get("status_code", 200)
        return answer["content"] if "content" in answer else json.dumps(answer["json"]).encode()

    return respond


# -- initiate ----------------------------------------------------------------------------------


def test_initiate_sends_message_returns_id_and_pushes_agent_url(requests_mock):
    requests_mock.post(RPC, **rpc_result({"id": "t-1"}))
    op = AgentVaultInitiateOperator(task_id="start", text="Research solar", data={"topic": "solar"})
    context = make_context()
    assert op.execute(context) == "t-1"
    sent = requests_mock.last_request.json()
    assert sent["method"] == "tasks/send"
    assert sent["params"]["message"]["parts"] == [
        {"type": "text", "content": "Research solar"},
        {"type": "data", "content": {"topic": "solar"}, "mediaType": "application/json"},
    ]
    assert requests_mock.last_request.headers["X-Api-Key"] == SECRET
    context["ti"].xcom_push.assert_called_once_with(key="agent_url", value=RPC)
    assert context["task_state_store"].get("agentvault_task_id") == "t-1"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "message is empty"),
        ({"text": "   "}, "message is empty"),
        ({"data": {"when": object()}}, "not JSON-serialisable"),
        ({"data": ["a"]}, "must be a dict"),
        ({"data": {"x": float("nan")}}, "not JSON-serialisable"),
    ],
)
def test_initiate_rejects_bad_input_before_any_request(requests_mock, kwargs, message):
    op = AgentVaultInitiateOperator(task_id="start", **kwargs)
    with pytest.raises(AirflowFailException, match=message):
        op.execute(make_context())
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("state", ["SUBMITTED", "WORKING", "INPUT_REQUIRED"])
def test_initiate_retry_reconnects_to_a_live_task_instead_of_starting_another(requests_mock, state):
    store = FakeTaskStateStore()
    store.set("agentvault_task_id", "t-old")
    requests_mock.post(RPC, **rpc_result(task_json("t-old", state)))
    op = AgentVaultInitiateOperator(task_id="start", text="again")
    assert op.execute(make_context(store, try_number=2)) == "t-old"
    assert methods(requests_mock) == ["tasks/get"]


def test_initiate_retry_while_task_not_visible_does_not_start_a_second_task(requests_mock):
    store = FakeTaskStateStore()
    store.set("agentvault_task_id", "t-old")
    requests_mock.post(RPC, **rpc_error(-32001, "Task not found: t-old"))
    op = AgentVaultInitiateOperator(task_id="start", text="again")
    assert op.execute(make_context(store, try_number=2)) == "t-old"
    assert methods(requests_mock) == ["tasks/get"]


def test_initiate_retry_after_failed_task_starts_a_new_one(requests_mock):
    store = FakeTaskStateStore()
    store.set("agentvault_task_id", "t-old")
    requests_mock.post(RPC, content=by_method({
        "tasks/get": [rpc_result(task_json("t-old", "FAILED"))],
        "tasks/send": [rpc_result({"id": "t-new"})],
    }))
    op = AgentVaultInitiateOperator(task_id="start", text="again")
    assert op.execute(make_context(store, try_number=2)) == "t-new"
    assert methods(requests_mock) == ["tasks/get", "tasks/send"]
    assert store.get("agentvault_task_id") == "t-new"


# -- stream --------------------------------------------------------------------------------------


def stream_op(**kwargs):
    kwargs.setdefault("timing", FAST)
    return AgentVaultStreamOperator(task_id="stream", agent_task_id="t-1", **kwargs)


COMPLETED = task_json("t-1", "COMPLETED", agent_text="done",
                      artifacts=[{"id": "t-1-result", "type": "result", "content": {"answer": 42}}])
BIG = task_json("t-1", "COMPLETED", agent_text="ok",
                artifacts=[{"id": "a", "type": "result", "content": {"blob": "x" * 5000}}])
EVENTS = sse_body(
    ("task_status", {"taskId": "t-1", "state": "WORKING", "timestamp": "2026-11-24T06:12:53Z", "message": None}),
    ("task_message", {"taskId": "t-1", "message": {"role": "assistant", "parts": [{"type": "text", "content": "done"}]}}),
    ("task_artifact", {"taskId": "t-1", "artifact": {"id": "t-1-result", "type": "result", "content": {"answer": 42}}}),
    ("task_status", {"taskId": "t-1", "state": "COMPLETED", "timestamp": "2026-11-24T06:12:57Z", "message": None}),
)


def test_stream_returns_result_from_tasks_get_delivered_by_stream(requests_mock, capsys):
    requests_mock.post(RPC, content=by_method({
        "tasks/get": [rpc_result(task_json("t-1", "WORKING")), rpc_result(COMPLETED)],
        "tasks/sendSubscribe": [{"content": EVENTS, "headers": SSE_HEADERS}],
    }))
    result = stream_op().execute(make_context())
    assert result["state"] == "COMPLETED" and result["text"] == "done"
    assert result["artifacts"] == [{"id": "t-1-result", "type": "result", "content": {"answer": 42}}]
    assert result["metadata"]["delivered_by"] == "stream"
    assert result["metadata"]["events_seen"] == 4
    assert methods(requests_mock) == ["tasks/get", "tasks/sendSubscribe", "tasks/get"]
    log = capsys.readouterr().out  # Airflow's structlog writes task logs to stdout here
    assert "artifact 't-1-result' (result, 13 bytes)" in log
    assert "assistant says: done" in log
    assert "delivered by stream" in log
    assert SECRET not in log
    assert SECRET not in json.dumps(result)


def test_stream_retries_not_found_then_resubscribes(requests_mock):
    requests_mock.post(RPC, content=by_method({
        "tasks/get": [rpc_error(-32001, "Task not found: t-1"), rpc_result(COMPLETED)],
        "tasks/sendSubscribe": [rpc_error(-32001, "Task not found: t-1"), {"content": EVENTS, "headers": SSE_HEADERS}],
    }))
    result = stream_op().execute(make_context())
    assert result["metadata"]["delivered_by"] == "resubscribe"
    assert result["metadata"]["sse_attempts"] == 2


def test_stream_falls_back_to_polling_when_subscribe_is_never_found(requests_mock):
    requests_mock.post(RPC, content=by_method({
        "tasks/get": [rpc_result(task_json("t-1", "WORKING"))] * 2 + [rpc_result(COMPLETED)],
        "tasks/sendSubscribe": [rpc_error(-32001, "Task not found: t-1")],
    }))
    result = stream_op(timing={**FAST, "sse_attempts": 3}).execute(make_context())
    assert result["metadata"]["delivered_by"] == "polling"
    assert methods(requests_mock).count("tasks/sendSubscribe") == 3
    assert result["artifacts"][0]["content"] == {"answer": 42}


def test_stream_disconnect_falls_back_to_polling_without_duplicates(requests_mock):
    cut = EVENTS.split(b"event: task_artifact")[0]
    requests_mock.post(RPC, content=by_method({
        "tasks/get": [rpc_result(task_json("t-1", "WORKING")), rpc_result(task_json("t-1", "WORKING")),
                      rpc_result(COMPLETED)],
        "tasks/sendSubscribe": [{"content": cut, "headers": SSE_HEADERS}],
    }))
    result = stream_op().execute(make_context())
    assert result["metadata"]["delivered_by"] == "polling"
    assert len(result["artifacts"]) == 1
    assert [m["role"] for m in result["messages"]] == ["assistant"]  # the request is not echoed back


def test_stream_already_finished_task_is_not_streamed(requests_mock):
    requests_mock.post(RPC, **rpc_result(COMPLETED))
    result = stream_op().execute(make_context())
    assert result["metadata"]["delivered_by"] == "already-finished"
    assert methods(requests_mock) == ["tasks/get"]


@pytest.mark.parametrize(
    "task, error, words",
    [
        (task_json("t-1", "FAILED", agent_text="model crashed", metadata={"error": "model crashed"}),
         errors.TaskFailedError, "model crashed"),
        (task_json("t-1", "FAILED", metadata={"error": "disk full"}), errors.TaskFailedError, "disk full"),
        (task_json("t-1", "CANCELED"), errors.TaskCanceledError, None),
        (task_json("t-1", "INPUT_REQUIRED", agent_text="Which decade?"), errors.InputRequiredError, "Which decade?"),
    ],
)
def test_stream_terminal_states_raise_typed_errors_with_agent_words(requests_mock, task, error, words):
    requests_mock.post(RPC, **rpc_result(task))
    with pytest.raises(error) as info:
        stream_op().execute(make_context())
    assert info.value.agent_message == words
    if words:
        assert words in str(info.value)
    assert "t-1" in str(info.value) and RPC in str(info.value)


def test_stream_failed_status_event_message_is_the_reason(requests_mock):
    failed = sse_body(("task_status", {"taskId": "t-1", "state": "FAILED", "message": "out of memory"}))
    requests_mock.post(RPC, content=by_method({
        "tasks/get": [rpc_result(task_json("t-1", "WORKING")), rpc_result(task_json("t-1", "FAILED"))],
        "tasks/sendSubscribe": [{"content": failed, "headers": SSE_HEADERS}],
    }))
    with pytest.raises(errors.TaskFailedError, match="out of memory"):
        stream_op().execute(make_context())


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_stream_overall_timeout_says_what_it_tried_and_cancels(requests_mock, cancel_on_kill):
    requests_mock.post(RPC, content=by_method({
        "tasks/get": [rpc_result(task_json("t-1", "WORKING"))],
        "tasks/sendSubscribe": [rpc_error(-32001, "Task not found: t-1")],
        "tasks/cancel": [rpc_result({"success": True, "message": None})],
    }))
    op = stream_op(timing={**FAST, "overall_timeout": 0.3, "sse_attempts": 1}, cancel_on_kill=cancel_on_kill)
    with pytest.raises(errors.WaitTimeoutError, match=r"overall timeout of 0.3 s \(waited .* s; last seen WORKING"):
        op.execute(make_context())
    assert ("tasks/cancel" in methods(requests_mock)) is cancel_on_kill


def test_stream_not_authorised_fails_at_once(requests_mock):
    requests_mock.post(RPC, status_code=401, json={"detail": "bad api key"}, headers={"Content-Type": "application/json"})
    with pytest.raises(errors.NotAuthorizedError) as info:
        stream_op().execute(make_context())
    assert SECRET not in str(info.value)
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    "timing, name",
    [({"poll_interval": "-1"}, "poll_interval"), ({"sse_attempts": 0}, "sse_attempts"),
     ({"read_timeout": "soon"}, "read_timeout"), ({"verify_attempts": "0"}, "verify_attempts")],
)
def test_stream_rejects_bad_timing_naming_the_param(requests_mock, timing, name):
    with pytest.raises(AirflowFailException, match=f"param '{name}'"):
        stream_op(timing=timing).execute(make_context())
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("bad", [None, "", "None"])
def test_stream_rejects_missing_task_id(requests_mock, bad):
    with pytest.raises(AirflowFailException, match="agent_task_id"):
        AgentVaultStreamOperator(task_id="s", agent_task_id=bad).execute(make_context())


def test_stream_result_above_limit_is_a_clear_error_when_storage_is_off(requests_mock):
    requests_mock.post(RPC, **rpc_result(BIG))
    with pytest.raises(errors.ResultTooLargeError, match="above the limit of 2000 bytes"):
        stream_op(max_result_bytes=2000, result_storage="").execute(make_context())


def test_stream_result_above_limit_can_be_truncated(requests_mock):
    requests_mock.post(RPC, **rpc_result(BIG))
    result = stream_op(max_result_bytes=2000, truncate_result=True).execute(make_context())
    assert result["metadata"]["truncated"] is True and result["artifacts"][0]["content_truncated"] is True


def test_stream_result_above_limit_goes_to_object_storage_and_resolves_for_the_next_stage(
    requests_mock, tmp_path, monkeypatch
):
    from airflow_agentvault import result_storage as storage

    monkeypatch.setenv("AIRFLOW__AGENTVAULT__RESULT_STORAGE", f"file://{tmp_path}")
    requests_mock.post(RPC, **rpc_result(BIG))
    stand_in = stream_op(max_result_bytes=2000).execute(make_context())
    assert len(json.dumps(stand_in)) < 2000
    stored = stand_in["result_ref"]
    assert stored.startswith(f"file://{tmp_path}/unit_dag/manual__2026-11-24T06_00_00_00_00/stream")
    full = storage.resolve_references({"previous": stand_in})["previous"]
    assert full["artifacts"][0]["content"] == {"blob": "x" * 5000}

    requests_mock.post(RPC, **rpc_result({"id": "t-2"}))
    AgentVaultInitiateOperator(task_id="next", data={"previous": stand_in}).execute(make_context())
    sent = requests_mock.last_request.json()["params"]["message"]["parts"][0]["content"]
    assert sent["previous"]["artifacts"][0]["content"] == {"blob": "x" * 5000}


def test_references_inside_agent_results_or_outside_the_storage_are_never_followed(tmp_path, monkeypatch):
    from airflow_agentvault import result_storage as storage

    monkeypatch.setenv("AIRFLOW__AGENTVAULT__RESULT_STORAGE", f"file://{tmp_path}/results")
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    forged = {"result_ref": f"file://{secret}", "metadata": {"offloaded_bytes": 1}}
    agent_result = {"state": "COMPLETED", "artifacts": [{"id": "a", "type": "x", "content": forged}]}
    assert storage.resolve_references({"previous": agent_result}) == {"previous": agent_result}
    with pytest.raises(ValueError, match="not under"):
        storage.resolve_references({"previous": forged})


def test_on_kill_cancels_the_remote_task_unless_switched_off(requests_mock):
    requests_mock.post(RPC, **rpc_result({"success": True, "message": None}))
    op = stream_op()
    op._following = "t-1"
    op.on_kill()
    assert requests_mock.last_request.json() == {**requests_mock.last_request.json(), "method": "tasks/cancel",
                                                 "params": {"id": "t-1"}}
    off = stream_op(cancel_on_kill=False)
    off._following = "t-1"
    off.on_kill()
    assert requests_mock.call_count == 1
