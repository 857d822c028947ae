"""Spans: the step span, the events each decision adds, traceparent on every request, no secret in a span."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from airflow_agentvault.compat import TaskDeferred
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.protocol import errors, tracing
from airflow_agentvault.protocol.async_client import AsyncAgentClient, AsyncTaskFollower
from airflow_agentvault.protocol.client import AgentClient, TaskFollower
from airflow_agentvault.protocol.models import Task
from airflow_agentvault.protocol.result import build_result
from airflow_agentvault.protocol.timing import Timing
from airflow_agentvault.stage_tracing import PAUSES, traced_trigger

from fakes import FakeTaskStateStore, make_context, rpc_result, task_json
from scenarios import RPC, SCENARIOS, TIMING, FakeClock, RecordingLogger, Script

EXPORTER = InMemorySpanExporter()
#: The providers EXPORTER is attached to: OTel allows one provider per process, and a test that ran
#: before (the trace viewer's, say) may have set it, so EXPORTER joins whichever is there, once.
ATTACHED: list[TracerProvider] = []


@pytest.fixture
def spans():
    """Spans finished during the test."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if provider not in ATTACHED:
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        ATTACHED.append(provider)
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def step_span(exporter):
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
    return span


def event_names(span):
    return [e.name for e in span.events]


def follow_sync(scenario, requests_mock):
    clock = FakeClock()
    requests_mock.post(RPC, content=Script(scenario.replies).requests_mock_callback())
    follower = TaskFollower(AgentClient(RPC), Timing.parse({**TIMING, **scenario.timing}), logger=RecordingLogger(),
                            clock=clock.time, sleep=clock.sleep)
    with pytest.raises(Exception) if scenario.error else _nothing(), tracing.invoke_agent(step="stream"):
        follower.follow("t-1", deadline=clock.now + 60)


async def follow_async(scenario, respx_mock):
    clock = FakeClock()
    respx_mock.post(RPC).mock(side_effect=Script(scenario.replies).respx_side_effect())
    async with AsyncAgentClient(RPC) as client:
        follower = AsyncTaskFollower(client, Timing.parse({**TIMING, **scenario.timing}), logger=RecordingLogger(),
                                     clock=clock.time, sleep=clock.asleep)
        with pytest.raises(Exception) if scenario.error else _nothing(), tracing.invoke_agent(step="stream"):
            await asyncio.wait_for(follower.follow("t-1", deadline=clock.now + 60), 10)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
async def test_both_runners_record_the_same_events(scenario, spans, requests_mock, respx_mock):
    follow_sync(scenario, requests_mock)
    sync = step_span(spans)
    spans.clear()
    await follow_async(scenario, respx_mock)
    async_ = step_span(spans)
    assert event_names(sync) == event_names(async_)
    assert [dict(e.attributes) for e in sync.events] == [dict(e.attributes) for e in async_.events]
    assert sync.attributes.get("error.type") == async_.attributes.get("error.type")
    if scenario.error:
        assert sync.status.status_code is StatusCode.ERROR
        assert sync.attributes["error.type"] == scenario.error.__name__
    else:
        assert tracing.DELIVERED in event_names(sync)
        assert sync.attributes["agentvault.delivered_by"] == scenario.path


def scenario(name):
    return next(s for s in SCENARIOS if s.name == name)


def test_the_story_of_a_stream_is_in_the_events(spans, requests_mock):
    follow_sync(SCENARIOS[0], requests_mock)
    span = step_span(spans)
    assert event_names(span) == [tracing.SUBSCRIBE, tracing.SUBSCRIPTION_END, tracing.DELIVERED]
    assert span.events[1].attributes["agentvault.reason"] == "terminal state"
    assert span.attributes["agentvault.task.state"] == "COMPLETED"
    assert span.attributes["gen_ai.operation.name"] == "invoke_agent"


@pytest.mark.parametrize("name, event, error_type", [
    ("damaged-event-ends-the-stream-then-resubscribe", tracing.SUBSCRIPTION_END, "StreamDisconnectedError"),
    ("unknown-event-is-skipped", tracing.EVENT_SKIPPED, None),
    ("retry-after-is-honoured", tracing.RETRY_AFTER, None),
    ("disconnects-then-polling", tracing.FALLBACK_POLLING, "StreamDisconnectedError"),
    ("forgotten-task-is-lost-after-the-grace", tracing.POLL_FAILED, "TaskNotFoundError"),
])
def test_faults_met_are_events(spans, requests_mock, name, event, error_type):
    follow_sync(scenario(name), requests_mock)
    span = step_span(spans)
    found = [e for e in span.events if e.name == event]
    assert found, event_names(span)
    if error_type:
        assert found[0].attributes["error.type"] == error_type


def test_a_lost_task_is_the_span_status(spans, requests_mock):
    follow_sync(scenario("forgotten-task-is-lost-after-the-grace"), requests_mock)
    span = step_span(spans)
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "TaskLostError"


def test_every_request_carries_the_trace_context(spans, requests_mock):
    follow_sync(SCENARIOS[0], requests_mock)
    span = step_span(spans)
    parents = {r.headers.get("traceparent") for r in requests_mock.request_history}
    (parent,) = parents
    version, trace_id, span_id, flags = parent.split("-")
    assert (version, int(trace_id, 16), int(span_id, 16)) == ("00", span.context.trace_id, span.context.span_id)
    assert int(flags, 16) & 1  # sampled


def test_no_trace_context_without_a_span(requests_mock):
    requests_mock.post(RPC, content=Script(SCENARIOS[0].replies).requests_mock_callback())
    AgentClient(RPC).get("t-1")
    assert "traceparent" not in requests_mock.request_history[0].headers


def test_a_pause_is_not_an_error(spans):
    assert TaskDeferred in PAUSES
    with pytest.raises(TaskDeferred), tracing.invoke_agent(step="stream", benign=PAUSES):
        raise TaskDeferred(trigger=None, method_name="execute_complete")
    span = step_span(spans)
    assert span.status.status_code is StatusCode.UNSET and event_names(span) == [tracing.DEFERRED]


class TwoEvents:
    """A trigger that yields two events and notes, at each step, whether it went on and which span was current."""

    def __init__(self) -> None:
        self.went_on = False
        self.closed = False
        self.current: list[int] = []

    @traced_trigger("stream.trigger")
    async def run(self):
        try:
            self.current.append(trace.get_current_span().get_span_context().span_id)
            yield "first"
            self.went_on = True
            self.current.append(trace.get_current_span().get_span_context().span_id)
            yield "second"
        finally:
            self.closed = True


async def test_a_trigger_s_event_reaches_airflow_before_the_trigger_goes_on(spans):
    trigger = TwoEvents()
    events = trigger.run()
    assert await anext(events) == "first"
    assert not trigger.went_on  # Airflow has the event while the trigger waits at its yield
    assert not trace.get_current_span().is_recording()  # and handles it outside the step's span
    assert spans.get_finished_spans() == ()  # which is still open
    assert [event async for event in events] == ["second"]
    span = step_span(spans)
    assert trigger.current == [span.context.span_id] * 2 and span.status.status_code is StatusCode.UNSET


async def test_a_trigger_closed_after_its_event_ends_its_span_without_error(spans):
    trigger = TwoEvents()
    events = trigger.run()
    assert await anext(events) == "first"
    await events.aclose()  # the task moved on: Airflow drops the trigger
    span = step_span(spans)
    assert trigger.closed and not trigger.went_on and span.status.status_code is StatusCode.UNSET


def test_an_error_is_the_status(spans):
    with pytest.raises(errors.TaskLostError), tracing.invoke_agent(step="stream"):
        raise errors.TaskLostError("the agent no longer knows task t-1", agent_url=RPC, task_id="t-1")
    span = step_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "TaskLostError: the agent no longer knows task t-1"
    assert span.attributes["error.type"] == "TaskLostError"


def test_usage_reported_by_the_agent():
    task = Task.model_validate(task_json("t-1", "COMPLETED", agent_text="done",
                                         metadata={"usage": {"input_tokens": 12, "output_tokens": 30, "junk": "x"}}))
    assert task.usage() == {"input_tokens": 12, "output_tokens": 30}
    assert build_result(task, agent_url=RPC)["metadata"]["usage"] == {"input_tokens": 12, "output_tokens": 30}
    assert Task.model_validate(task_json("t-1", "COMPLETED")).usage() == {}
    assert "usage" not in build_result(Task.model_validate(task_json("t-1", "COMPLETED")), agent_url=RPC)["metadata"]


SECRET = "s3cr3t-credential-value"
ACCESS_TOKEN = "at-s3cr3t-access-token"


@pytest.mark.parametrize("auth", ["api_key", "bearer", "oauth2"])
def test_a_stage_span_holds_no_secret_and_names_the_agent(spans, requests_mock, monkeypatch, auth):
    extra = {"auth_type": auth, **({"oauth_endpoint": "/oauth/token"} if auth == "oauth2" else {})}
    conn = {"conn_type": "agentvault", "host": RPC, "password": SECRET, "login": "client-1", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_AGENTVAULT_DEFAULT", json.dumps(conn))
    requests_mock.post("http://agent.test/oauth/token", json={"access_token": ACCESS_TOKEN, "token_type": "Bearer",
                                                              "expires_in": 3600})
    done = task_json("t-1", "COMPLETED", agent_text="done", metadata={"usage": {"input_tokens": 5,
                                                                               "output_tokens": 7}})

    def respond(request, context):
        method = request.json()["method"]
        context.headers = {"Content-Type": "application/json"}
        return json.dumps(rpc_result({"id": "t-1"} if method == "tasks/send" else done)["json"]).encode()

    requests_mock.post(RPC, content=respond)
    op = AgentVaultStageOperator(task_id="stage", text="go", timing={"verify_interval": 0.01})
    result = op.execute(make_context(FakeTaskStateStore()))
    assert result["metadata"]["usage"] == {"input_tokens": 5, "output_tokens": 7}
    span = step_span(spans)
    assert span.attributes["agentvault.step"] == "stage"
    assert span.attributes["server.address"] == "agent.test" and span.attributes["server.port"] == 80
    assert span.attributes["gen_ai.usage.input_tokens"] == 5 and span.attributes["gen_ai.usage.output_tokens"] == 7
    assert span.attributes["gen_ai.conversation.id"]
    assert tracing.SEND in event_names(span)
    sent = json.dumps([dict(r.headers) for r in requests_mock.request_history if r.url == RPC])
    assert (ACCESS_TOKEN if auth == "oauth2" else SECRET) in sent  # the credentials did travel
    exported = json.dumps([json.loads(s.to_json()) for s in spans.get_finished_spans()])
    assert SECRET not in exported and ACCESS_TOKEN not in exported


def test_the_report_states_the_pipelines_token_total(tmp_path, monkeypatch):
    from airflow_agentvault.pipelines.report import publish_report, total_usage

    first = {"task_id": "a", "metadata": {"usage": {"input_tokens": 3, "output_tokens": 10}}}
    stages = [first, {"metadata": {}}, None, first,  # an ask-person round passed the stage's result on
              {"task_id": "b", "metadata": {"usage": {"input_tokens": 4, "output_tokens": 1}, "offloaded_bytes": 9}}]
    assert total_usage(stages) == {"input_tokens": 7, "output_tokens": 11}
    monkeypatch.setenv("AGENTVAULT_REPORTS_DIR", str(tmp_path))
    report = {"task_id": "t", "artifacts": [{"id": "r", "type": "report", "mediaType": "text/markdown",
                                             "content": "# Report"}]}
    info = publish_report("topic", report, None, run_id="run", usage=total_usage(stages))
    assert info["usage"] == {"input_tokens": 7, "output_tokens": 11}
    assert (tmp_path / "run" / "report.md").read_text().endswith("7 in, 11 out.*\n")


def test_a_persons_answer_and_how_long_it_took_are_on_the_span(spans, requests_mock, monkeypatch):
    import time

    from airflow_agentvault.operators.ask_person import AgentVaultAskPersonOperator
    from airflow_agentvault.protocol.questions import INPUT, Question

    monkeypatch.setenv("AIRFLOW_CONN_AGENTVAULT_DEFAULT", json.dumps({"conn_type": "agentvault", "host": RPC}))

    def respond(request, context):
        context.headers = {"Content-Type": "application/json"}
        done = task_json("t-1", "COMPLETED", agent_text="the car maker it is")
        return json.dumps(rpc_result({"id": "t-1"} if request.json()["method"] == "tasks/send" else done)["json"])

    requests_mock.post(RPC, text=respond)
    context = make_context()
    context["ti"].xcom_pull.return_value = None
    op = AgentVaultAskPersonOperator(task_id="ask_person_1", previous={"task_id": "t-1"}, timing={"poll_interval": 0.01})
    question = Question(INPUT, "Which jaguar?", ("the animal", "the car maker")).to_dict()
    op.answer_received(context, {"chosen_options": ["the car maker"], "params_input": {}}, "t-1", None, question,
                       asked_at=time.time() - 3600)
    span = step_span(spans)
    assert span.attributes["agentvault.step"] == "ask_person.answer"
    (answered,) = [e for e in span.events if e.name == tracing.PERSON_ANSWERED]
    assert answered.attributes["agentvault.person.answered"] is True
    assert 3600 <= answered.attributes["agentvault.person.wait_seconds"] < 3700
    assert "the car maker" not in json.dumps(dict(answered.attributes))  # the answer itself stays out of spans


def test_a_retry_that_reconnects_says_so_instead_of_sending(spans, requests_mock, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AGENTVAULT_DEFAULT", json.dumps({"conn_type": "agentvault", "host": RPC}))
    done = task_json("t-1", "COMPLETED", agent_text="done")
    requests_mock.post(RPC, json=rpc_result(done)["json"], headers={"Content-Type": "application/json"})
    store = FakeTaskStateStore()
    store.set("agentvault_task_id", "t-1")
    AgentVaultStageOperator(task_id="stage", text="go", timing={"verify_interval": 0.01}).execute(
        make_context(store, try_number=2))
    events = event_names(step_span(spans))
    assert tracing.RECONNECT in events and tracing.SEND not in events


def test_spans_record_only_under_a_configured_tracer_provider(monkeypatch):
    for provider, records in ((trace.NoOpTracerProvider(), False), (trace.ProxyTracerProvider(), False),
                              (TracerProvider(), True)):
        monkeypatch.setattr(trace, "get_tracer_provider", lambda provider=provider: provider)
        assert tracing.spans_recorded() is records


async def test_with_nothing_recording_a_trigger_keeps_no_span_and_still_hands_over_and_closes(spans, monkeypatch):
    monkeypatch.setattr(tracing, "spans_recorded", lambda: False)
    trigger = TwoEvents()
    events = trigger.run()
    assert events.ag_code is TwoEvents.run.__wrapped__.__code__  # the trigger's own generator, nothing around it
    assert await anext(events) == "first" and not trigger.went_on
    await events.aclose()
    assert trigger.closed and not trigger.went_on
    trigger = TwoEvents()
    assert [event async for event in trigger.run()] == ["first", "second"] and trigger.closed
    assert trigger.current == [trace.INVALID_SPAN.get_span_context().span_id] * 2 and spans.get_finished_spans() == ()
