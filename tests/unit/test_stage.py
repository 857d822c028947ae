"""The compact stage operator and the agent_stage() factory."""

from __future__ import annotations

import itertools
import json

import pytest
from airflow.sdk import DAG

from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.pipelines.stage import agent_stage

from fakes import FakeTaskStateStore, make_context, rpc_error, rpc_result, set_connection, task_json

RPC = "http://agent.test/a2a/"
FAST = {"verify_interval": 0.01, "sse_retry_delay": 0.01, "poll_interval": 0.01}
COMPLETED = task_json("t-1", "COMPLETED", agent_text="done",
                      artifacts=[{"id": "t-1-result", "type": "result", "content": {"answer": 42}}])


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    set_connection(monkeypatch, "agentvault_default", RPC)


def by_method(answers):
    def respond(request, context):
        queue = answers[request.json()["method"]]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        context.headers = answer["headers"]
        return json.dumps(answer["json"]).encode()

    return respond


def methods(requests_mock):
    return [r.json()["method"] for r in requests_mock.request_history]


def test_compact_stage_starts_waits_follows_and_returns_the_result(requests_mock):
    requests_mock.post(RPC, content=by_method({
        "tasks/send": [rpc_result({"id": "t-1"})],
        "tasks/get": [rpc_error(-32001, "Task not found: t-1"), rpc_result(task_json("t-1", "WORKING")),
                      rpc_result(task_json("t-1", "WORKING")), rpc_result(COMPLETED)],
        "tasks/sendSubscribe": [rpc_error(-32001, "Task not found: t-1")],
    }))
    store = FakeTaskStateStore()
    op = AgentVaultStageOperator(task_id="stage", text="go", timing={**FAST, "sse_attempts": 1})
    result = op.execute(make_context(store))
    assert result["state"] == "COMPLETED" and result["artifacts"][0]["content"] == {"answer": 42}
    assert result["metadata"]["delivered_by"] == "polling"
    assert store.get("agentvault_task_id") == "t-1"
    assert methods(requests_mock)[:3] == ["tasks/send", "tasks/get", "tasks/get"]


@pytest.mark.parametrize("state, path", [("WORKING", "already-finished"), ("COMPLETED", "already-finished")])
def test_compact_stage_retry_reconnects_without_a_second_task(requests_mock, state, path):
    store = FakeTaskStateStore()
    store.set("agentvault_task_id", "t-1")
    requests_mock.post(RPC, content=by_method({
        "tasks/get": [rpc_result(task_json("t-1", state)), rpc_result(COMPLETED)],
    }))
    result = AgentVaultStageOperator(task_id="stage", text="go", timing=FAST).execute(make_context(store, 2))
    assert result["state"] == "COMPLETED"
    assert "tasks/send" not in methods(requests_mock)


def test_compact_stage_gives_up_when_the_task_never_appears(requests_mock):
    from airflow_agentvault.protocol import errors

    requests_mock.post(RPC, content=by_method({
        "tasks/send": [rpc_result({"id": "t-1"})],
        "tasks/get": [rpc_error(-32001, "Task not found: t-1")],
    }))
    op = AgentVaultStageOperator(task_id="stage", text="go", timing={**FAST, "verify_attempts": 3})
    with pytest.raises(errors.WaitTimeoutError, match="3 checks of tasks/get.*Likely causes"):
        op.execute(make_context())


def test_agent_stage_builds_the_split_and_compact_forms():
    with DAG("split_dag", schedule=None) as split:
        first = agent_stage("first", text="a")
        agent_stage("second", data={"previous": first.output}, timing_overrides={"poll_interval": 7})
    assert sorted(t.task_id for t in split.tasks) == sorted(
        f"{s}.{t}" for s in ("first", "second") for t in ("initiate", "wait_until_visible", "stream")
    )
    assert "first.stream" in split.get_task("second.initiate").upstream_task_ids
    assert split.get_task("second.stream").timing["poll_interval"] == 7
    assert split.get_task("first.stream").timing["poll_interval"] == "{{ params.poll_interval }}"

    with DAG("compact_dag", schedule=None) as compact:
        one = agent_stage("one", text="a", compact=True)
        agent_stage("two", data={"previous": one.output}, compact=True)
    assert sorted(t.task_id for t in compact.tasks) == ["one", "two"]
    assert "one" in compact.get_task("two").upstream_task_ids


@pytest.mark.parametrize("deferrable", [True, False])
@pytest.mark.parametrize("ask_person", [False, True])
def test_agent_stage_hands_deferrable_to_every_form(deferrable, ask_person):
    with DAG("deferrable_dag", schedule=None) as dag:
        agent_stage("split", text="a", deferrable=deferrable, ask_person=ask_person)
        agent_stage("compact", text="a", compact=True, deferrable=deferrable, ask_person=ask_person)
    following = [t for t in dag.tasks if t.task_id.split(".")[-1] in ("stream", "run", "compact")
                 or t.task_id.startswith(("split.ask_person", "compact.ask_person"))]
    assert len(following) == (6 if ask_person else 2)
    assert {t.task_id: t.deferrable for t in following} == {t.task_id: deferrable for t in following}


def test_research_stages_chain_the_seven_stages_and_ask_only_where_agents_may_ask():
    from airflow_agentvault.pipelines.research import ASKING_STAGES, STAGE_IDS, connection_id, research_stages

    with DAG("research_dag", schedule=None) as dag:
        outputs = research_stages(compact=True, ask_person=True, deferrable=True)
    assert list(outputs) == STAGE_IDS
    for earlier, later in itertools.pairwise(STAGE_IDS):
        first = dag.get_task(f"{later}.run" if later in ASKING_STAGES else later)
        assert any(t.startswith(earlier) for t in first.upstream_task_ids)
    asking = {t.task_id.split(".")[0] for t in dag.tasks if ".ask_person_" in t.task_id}
    assert asking == set(ASKING_STAGES)
    crawl = dag.get_task("crawl")
    assert crawl.agentvault_conn_id == connection_id("crawl") and crawl.deferrable
    assert "{{ params.topic }}" in crawl.text and crawl.data["topic"] == "{{ params.topic }}"
