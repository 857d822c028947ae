"""Worker-free stages: which stages start in the triggerer (parse time), and the stage trigger (respx, fake clock)."""

from __future__ import annotations

import asyncio
import json
import warnings
from types import SimpleNamespace
from typing import Any

import httpx
import pendulum
import pytest
from airflow.sdk import DAG, task

from airflow_agentvault.compat import WORKER_FREE_STAGES
from airflow_agentvault.operators.remote_task import PENDING_KEY, SEEN_KEY, TASK_ID_KEY
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.operators.worker_free import RESUME, TRIGGER, XCOM_INPUT, NotPortable, portable
from airflow_agentvault.protocol import receiver
from airflow_agentvault.triggers.stage import CLAIM_KEY, STARTED_KEY, STATUS_FALLBACK, AgentVaultStageTrigger

from fakes import FakeTriggerRecord, kept_while_parked, rpc_result, set_connection, task_json
from scenarios import COMPLETED, FULL_STREAM, RPC, WORKING, FakeClock, RecordingLogger, Script

SECRET = "sk-worker-free-secret-0123456789"
CONN = "agentvault_wf"
TIMING = {"verify_attempts": 4, "verify_interval": 0.2, "sse_retry_delay": 0.5, "poll_interval": 1.0,
          "overall_timeout": 60.0}
needs_33 = pytest.mark.skipif(not WORKER_FREE_STAGES, reason="tasks start in the triggerer from Airflow 3.3")


def dag() -> DAG:
    return DAG("wf", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))


def stage(**kwargs: Any) -> AgentVaultStageOperator:
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        return AgentVaultStageOperator(task_id=kwargs.pop("task_id", "s"), agentvault_conn_id=CONN,
                                       **{"text": "hi {{ params.topic }}", "worker_free": True, **kwargs})


# -- which stages are worker-free ----------------------------------------------------------------------


@needs_33
def test_a_worker_free_stage_starts_in_the_triggerer_with_no_credential():
    with dag():
        op = stage(timing=TIMING, data={"n": 1})
    assert op.start_from_trigger and op.worker_free_reason is None and op.deferrable
    args = op.start_trigger_args
    assert (args.trigger_cls, args.next_method) == (TRIGGER, RESUME)
    assert args.trigger_kwargs["text"] == "hi {{ params.topic }}" and args.trigger_kwargs["conn_id"] == CONN
    assert SECRET not in json.dumps(args.trigger_kwargs)
    # the trigger takes exactly these keywords, and the template fields are among them
    assert AgentVaultStageTrigger(**args.trigger_kwargs).serialize()[1] == args.trigger_kwargs
    assert set(op.template_fields) <= set(args.trigger_kwargs)


def test_the_switch_is_off_by_default():
    with dag():
        op = AgentVaultStageOperator(task_id="s", text="hi")
    assert not op.start_from_trigger and op.start_trigger_args is None


@needs_33
def test_an_unmapped_upstream_output_becomes_a_placeholder_and_stays_a_dependency():
    with dag():
        up = AgentVaultStageOperator(task_id="up", text="first")
        op = stage(data={"previous": up.output, "topic": "x"})
    assert op.start_from_trigger
    assert op.start_trigger_args.trigger_kwargs["data"] == {
        "previous": {XCOM_INPUT: {"task_id": "up", "key": "return_value"}}, "topic": "x"}
    assert op.upstream_task_ids == {"up"}


@needs_33
@pytest.mark.parametrize("why, build", [
    ("deferrable=False", lambda: stage(deferrable=False)),
    ("pool", lambda: stage(pool="agents")),
    ("do_xcom_push", lambda: stage(do_xcom_push=False)),
    ("concurrency", lambda: stage(max_active_tis_per_dagrun=2)),
    ("outlets", lambda: stage(outlets=[__import__("airflow.sdk", fromlist=["Asset"]).Asset("x")])),
    ("on_success", lambda: stage(on_success_callback=lambda context: None)),
    ("xcom_pull", lambda: stage(text="{{ ti.xcom_pull('up') }}")),
    ("mapped task", lambda: stage(data={"p": AgentVaultStageOperator.partial(task_id="m").expand(
        text=["a", "b"]).output})),
    ("derived XComArg", lambda: stage(data={"p": AgentVaultStageOperator(task_id="u", text="x").output.map(str)})),
])
def test_what_airflow_cannot_serve_from_the_triggerer_defers_as_before(why, build):
    with dag():
        op = build()
    assert not op.start_from_trigger and op.start_trigger_args is None
    assert op.worker_free_reason and (why.split()[0].lower() in op.worker_free_reason.lower() or why == "mapped task"
                                      and "mapped" in op.worker_free_reason or why == "derived XComArg"
                                      and "XComArg" in op.worker_free_reason), op.worker_free_reason


@pytest.mark.parametrize("derive", [lambda a, b: a.map(str), lambda a, b: a.zip(b), lambda a, b: a.concat(b)],
                         ids=["map", "zip", "concat"])
def test_only_one_task_s_own_output_travels_to_the_trigger(derive):
    """An upstream's output is a placeholder the trigger reads; a derived XComArg is resolved only on a worker."""
    with dag():
        a, b = (AgentVaultStageOperator(task_id=name, text="x") for name in ("a", "b"))
    assert portable({"p": a.output}) == {"p": {XCOM_INPUT: {"task_id": "a", "key": "return_value"}}}
    with pytest.raises(NotPortable, match="derived XComArg"):
        portable({"p": derive(a.output, b.output)})


@needs_33
def test_a_mapped_stage_and_the_decorator_never_start_in_the_triggerer():
    with dag():
        mapped = AgentVaultStageOperator.partial(task_id="m", worker_free=True).expand(text=["a", "b"])

        @task.agentvault(worker_free=True)
        def ask() -> str:
            return "hi"

        decorated = ask().operator
    assert mapped.start_from_trigger is False
    assert not decorated.start_from_trigger and "Python function" in decorated.worker_free_reason


# -- the trigger -----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    set_connection(monkeypatch, CONN, RPC, password=SECRET)


def trigger(record: FakeTriggerRecord, clock: FakeClock, logger: RecordingLogger, try_number: int = 1, **kwargs: Any):
    made = AgentVaultStageTrigger(conn_id=CONN, **{"text": "hi", "timing": TIMING, **kwargs})
    made.task_instance = SimpleNamespace(dag_id="wf", run_id="r", task_id="s", map_index=-1, try_number=try_number)
    made._clock, made._sleep, made._log, made._record = clock.time, clock.asleep, logger, record
    return made


async def events(made) -> list[Any]:
    async def collect():
        return [event async for event in made.run()]

    return await asyncio.wait_for(collect(), 10)


def script(respx_mock, replies: dict[str, list[dict[str, Any]]]) -> Script:
    played = Script(replies)
    respx_mock.post(RPC).mock(side_effect=played.respx_side_effect())
    return played


async def test_a_stage_starts_follows_and_ends_in_the_triggerer(respx_mock):
    played = script(respx_mock, {"tasks/send": [rpc_result({"id": "t-1"})], "tasks/get": [WORKING, COMPLETED],
                                 "tasks/sendSubscribe": [FULL_STREAM]})
    record, logger = FakeTriggerRecord(), RecordingLogger()
    [event] = await events(trigger(record, FakeClock(), logger))
    assert type(event).__name__ == "TaskSuccessEvent" and not event.xcoms  # the result went through the backend
    result = record.values["return_value"]
    assert record.writes[-1][0] == "return_value" and record.values["_link_AgentCardLink"].startswith("http://agent.test")
    assert result["state"] == "COMPLETED" and result["artifacts"][0]["content"] == {"answer": 42}
    assert played.methods[0] == "tasks/send" and played.methods.count("tasks/send") == 1
    # the send was recorded as under way, then its task, then that the agent showed it
    keys = [key for key, _ in record.writes]
    assert keys.index(PENDING_KEY) < keys.index(TASK_ID_KEY) < keys.index(SEEN_KEY)
    assert record.values[TASK_ID_KEY] == "t-1" and keys.count(PENDING_KEY) == 1  # the id supersedes it
    assert "Worker-free: this stage started in the triggerer" in logger.text()
    assert SECRET not in json.dumps(record.values)


async def test_a_moved_trigger_reconnects_and_keeps_its_deadline(respx_mock):
    """A second triggerer runs the trigger again from its kwargs: the record makes it reconnect, not resend."""
    played = script(respx_mock, {"tasks/get": [WORKING, WORKING, COMPLETED], "tasks/sendSubscribe": [FULL_STREAM]})
    clock = FakeClock()
    began = {"try": 1, "at": clock.now - 50, "follow_at": clock.now - 50}
    record = FakeTriggerRecord(**{TASK_ID_KEY: "t-1", SEEN_KEY: "t-1", STARTED_KEY: began})
    [event] = await events(trigger(record, clock, RecordingLogger()))
    assert type(event).__name__ == "TaskSuccessEvent"
    assert "tasks/send" not in played.methods
    assert record.values[STARTED_KEY] == began  # the deadline is still 60 s after the first start


async def test_a_new_try_replaces_a_failed_remote_task(respx_mock):
    failed = rpc_result(task_json("t-1", "FAILED"))
    played = script(respx_mock, {"tasks/get": [failed, WORKING, COMPLETED], "tasks/send": [rpc_result({"id": "t-2"})],
                                 "tasks/sendSubscribe": [FULL_STREAM]})
    record = FakeTriggerRecord(**{TASK_ID_KEY: "t-1", SEEN_KEY: "t-1", STARTED_KEY: {"try": 1, "at": 0.0}})
    [event] = await events(trigger(record, FakeClock(), RecordingLogger(), try_number=2))
    assert played.methods.count("tasks/send") == 1 and record.values[TASK_ID_KEY] == "t-2"
    assert record.values[STARTED_KEY]["try"] == 2


async def test_a_failed_remote_task_resumes_on_a_worker_for_its_typed_error(respx_mock):
    failed = rpc_result(task_json("t-1", "FAILED", agent_text="no sources"))
    script(respx_mock, {"tasks/send": [rpc_result({"id": "t-1"})], "tasks/get": [failed]})
    [event] = await events(trigger(FakeTriggerRecord(), FakeClock(), RecordingLogger()))
    assert type(event).__name__ == "TriggerEvent"
    assert event.payload["status"] == "done" and event.payload["task"]["state"] == "FAILED"


async def test_a_send_of_this_try_cut_off_by_a_move_is_ambiguous_not_resent(respx_mock):
    played = script(respx_mock, {"tasks/send": [rpc_result({"id": "t-9"})]})
    record = FakeTriggerRecord(**{PENDING_KEY: 1})
    [event] = await events(trigger(record, FakeClock(), RecordingLogger()))
    assert event.payload["status"] == "error" and event.payload["error_type"] == "AmbiguousSendError"
    assert played.methods == []


async def test_with_resend_if_unsure_a_cut_off_send_is_sent_again(respx_mock):
    played = script(respx_mock, {"tasks/send": [rpc_result({"id": "t-1"})], "tasks/get": [COMPLETED]})
    [event] = await events(trigger(FakeTriggerRecord(**{PENDING_KEY: 1}), FakeClock(), RecordingLogger(),
                                   resend_if_unsure=True))
    assert type(event).__name__ == "TaskSuccessEvent" and played.methods.count("tasks/send") == 1


async def test_an_upstream_output_is_read_from_its_xcom(respx_mock):
    script(respx_mock, {"tasks/send": [rpc_result({"id": "t-1"})], "tasks/get": [COMPLETED]})
    record = FakeTriggerRecord()
    record.upstream[("up", "return_value")] = {"text": "from upstream"}
    await events(trigger(record, FakeClock(), RecordingLogger(),
                         data={"previous": {XCOM_INPUT: {"task_id": "up", "key": "return_value"}}}))
    sent = json.loads(respx_mock.calls[0].request.content)["params"]["message"]["parts"]
    assert [part["content"] for part in sent if part["type"] == "data"] == [{"previous": {"text": "from upstream"}}]


async def test_an_input_only_a_worker_can_judge_falls_back(respx_mock):
    [event] = await events(trigger(FakeTriggerRecord(), FakeClock(), RecordingLogger(), text=None, data=None))
    assert event.payload["status"] == STATUS_FALLBACK and "empty" in event.payload["reason"]
    assert respx_mock.calls.call_count == 0


async def test_a_result_above_the_limit_is_stored_by_the_worker(respx_mock):
    script(respx_mock, {"tasks/send": [rpc_result({"id": "t-1"})], "tasks/get": [COMPLETED]})
    [event] = await events(trigger(FakeTriggerRecord(), FakeClock(), RecordingLogger(), max_result_bytes=10,
                                   result_storage="file:///tmp/results"))
    assert event.payload["status"] == "done"


async def test_on_kill_cancels_the_task_the_record_names(respx_mock):
    played = script(respx_mock, {"tasks/cancel": [rpc_result({"success": True, "message": None})]})
    made = trigger(FakeTriggerRecord(**{TASK_ID_KEY: "t-1"}), FakeClock(), RecordingLogger())
    await asyncio.wait_for(made.on_kill(), 10)
    assert played.methods == ["tasks/cancel"]
    await asyncio.wait_for(made.cleanup(), 10)
    assert played.methods == ["tasks/cancel"]


def test_the_stage_resumes_a_fallback_by_running_itself():
    op = AgentVaultStageOperator(task_id="s", text="hi", agentvault_conn_id=CONN)
    ran: list[str] = []
    op.execute = lambda context: ran.append("execute") or {"ok": 1}  # type: ignore[method-assign]
    op.execute_complete = lambda context, event: ran.append("complete") or {}  # type: ignore[method-assign]
    assert op.resume_from_triggerer({}, {"status": STATUS_FALLBACK, "reason": "r"}) == {"ok": 1}
    op.resume_from_triggerer({}, {"status": "done"})
    assert ran == ["execute", "complete"]



@needs_33
def test_a_stage_in_a_mapped_task_group_defers_as_before():
    from airflow.sdk import task_group

    with dag() as built:
        @task_group(group_id="per_topic")
        def per_topic(topic: str):
            stage(task_id="inner", data={"topic": "x"})

        per_topic.expand(topic=["a", "b"])
    inner = built.get_task("per_topic.inner")
    assert not inner.start_from_trigger and "mapped task group" in inner.worker_free_reason


class RacingRecord(FakeTriggerRecord):
    """Another run of this try (a second triggerer) claims the send right after this one, then records its task."""

    async def put(self, item: tuple[str, Any]) -> None:
        await super().put(item)
        if item[0] == CLAIM_KEY:
            self.values[CLAIM_KEY] = {"try": 1, "by": "the other run"}

    async def load(self, keys: tuple[str, ...] | None = None) -> Any:
        if CLAIM_KEY in self.values:  # the other run's send answered by now
            self.values.setdefault(TASK_ID_KEY, "t-1")
        return await super().load(keys)


class OvertakenRecord(FakeTriggerRecord):
    """Another run of this try won its claim before this one's landed: it is sending, then records its task."""

    claimed = 0

    async def put(self, item: tuple[str, Any]) -> None:
        await super().put(item)
        if item[0] == CLAIM_KEY:  # this claim stays the last one written, but the other run decided already
            self.values[PENDING_KEY] = 1

    async def load(self, keys: tuple[str, ...] | None = None) -> Any:
        if PENDING_KEY in self.values:
            self.claimed += 1
            if self.claimed > 1:  # the other run's send answered by the time this one looks again
                self.values.setdefault(TASK_ID_KEY, "t-1")
        return await super().load(keys)


@pytest.mark.parametrize("other_run", [RacingRecord, OvertakenRecord], ids=["claims-last", "decided-first"])
async def test_of_two_runs_of_one_try_only_one_sends(respx_mock, other_run):
    """The other run's claim lands last, or it won its claim before this run's claim landed."""
    played = script(respx_mock, {"tasks/get": [WORKING, COMPLETED], "tasks/sendSubscribe": [FULL_STREAM]})
    record, logger = other_run(), RecordingLogger()
    [event] = await events(trigger(record, FakeClock(), logger))
    assert type(event).__name__ == "TaskSuccessEvent" and record.values["return_value"]["task_id"] == "t-1"
    assert "tasks/send" not in played.methods
    assert "Another run of this try is sending" in logger.text()


async def test_a_claim_read_back_unchanged_sends(respx_mock):
    played = script(respx_mock, {"tasks/send": [rpc_result({"id": "t-1"})], "tasks/get": [COMPLETED]})
    record = FakeTriggerRecord()
    await events(trigger(record, FakeClock(), RecordingLogger()))
    assert played.methods.count("tasks/send") == 1
    assert [key for key, _ in record.writes].index(CLAIM_KEY) < [key for key, _ in record.writes].index(PENDING_KEY)


@pytest.mark.parametrize("state, cancels", [("deferred", False), ("failed", True)])
async def test_on_kill_leaves_the_task_to_the_triggerer_that_took_the_trigger_over(respx_mock, monkeypatch, state,
                                                                                   cancels):
    """A user's kill moved the task out of DEFERRED; a trigger taken over by another triggerer did not."""
    from airflow.sdk.execution_time import task_runner

    class Comms:
        async def asend(self, msg):
            return SimpleNamespace(task_states={"r": {"s": state}})

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Comms(), raising=False)
    played = script(respx_mock, {"tasks/cancel": [rpc_result({"success": True, "message": None})]})
    logger = RecordingLogger()
    await asyncio.wait_for(trigger(FakeTriggerRecord(**{TASK_ID_KEY: "t-1"}), FakeClock(), logger).on_kill(), 10)
    assert played.methods == (["tasks/cancel"] if cancels else [])
    assert cancels or "still deferred" in logger.text()


async def test_a_stage_parked_by_push_keeps_neither_its_input_nor_a_task_nor_a_follower_routine(respx_mock, monkeypatch):
    """A worker-free stage waiting for hours by push holds its wait's few fields, not what it sent or read."""
    set_connection(monkeypatch, CONN, RPC, dialect="a2a-1.0", push="on")
    states = ["TASK_STATE_WORKING", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    methods: list[str] = []

    def answer(request):
        body = json.loads(request.content)
        methods.append(body["method"])
        if body["method"] == "GetTask":
            result = {"id": "t-parked", "contextId": "c", "status": {"state": states.pop(0)},
                      "artifacts": [{"artifactId": "a", "parts": [{"text": "done"}]}]}
        elif body["method"] == "SendMessage":
            result = {"task": {"id": "t-parked", "contextId": "c", "status": {"state": "TASK_STATE_SUBMITTED"}}}
        else:
            result = {}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})

    respx_mock.post(RPC).mock(side_effect=answer)
    kept: list[list[str]] = []
    ring_and_wait = receiver.Doorbell.wait

    async def parked(bell: receiver.Doorbell, seconds: float) -> bool:
        kept.append(kept_while_parked("t-parked", sent="summarise parked-input-7f3a"))
        bell.ring()  # the agent's notification
        return await ring_and_wait(bell, seconds)

    monkeypatch.setattr(receiver.Doorbell, "wait", parked)
    try:
        [event] = await events(trigger(FakeTriggerRecord(), FakeClock(), RecordingLogger(), push="on",
                                       text="summarise parked-input-7f3a"))
    finally:
        await receiver.stop_shared()
    assert type(event).__name__ == "TaskSuccessEvent"
    assert "CreateTaskPushNotificationConfig" in methods and "SubscribeToTask" not in methods
    assert kept == [[]]
