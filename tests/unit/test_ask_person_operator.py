"""A person answering an agent's question: the question read from a task, the form, the follow-up, the bounds."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from airflow_agentvault.operators.agentvault import AgentVaultStreamOperator
from airflow_agentvault.operators.ask_person import (
    REJECT,
    ROUND_KEY,
    SEND,
    SEND_CREDENTIAL,
    AgentVaultAskPersonOperator,
    form_of,
)
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.models import Task
from airflow_agentvault.protocol.questions import AUTH, INPUT, Question, question_of
from airflow_agentvault.required_action import required_action_body, required_action_subject

from fakes import make_context, rpc_result, set_connection, task_json

RPC = "http://agent.test/a2a/"
FAST = {"sse_retry_delay": 0.01, "poll_interval": 0.01, "overall_timeout": 5}
SECRET = "vault-secret-42"


@pytest.fixture(autouse=True)
def connections(monkeypatch):
    set_connection(monkeypatch, "agentvault_default", RPC)
    monkeypatch.setenv("AIRFLOW_CONN_PARTNER_VAULT", json.dumps({"conn_type": "generic", "password": SECRET}))


def asking(state: str = "INPUT_REQUIRED", text: str = "Which jaguar?", options: list[str] | None = None) -> dict:
    task = task_json("t-1", state)
    parts = [{"type": "text", "content": text}]
    if options is not None:
        parts.append({"type": "data", "content": {"options": options}})
    task["messages"].append({"role": "assistant", "parts": parts})
    return task


def parse(wire: dict) -> Task:
    return Task.model_validate(wire)


def test_the_question_is_the_agents_last_message_with_the_options_it_offered():
    question = question_of(parse(asking(options=["the animal", "the car maker", "the animal"])))
    assert question == Question(INPUT, "Which jaguar?", ("the animal", "the car maker"))
    assert question_of(parse(task_json("t-1", "WORKING"))) is None
    assert question_of(parse(task_json("t-1", "AUTH_REQUIRED"))) == Question(
        AUTH, "The agent needs credentials to continue.")
    assert Question.from_dict(question.to_dict()) == question


def test_the_form_offers_the_agents_options_a_text_field_or_a_credential_source():
    assert form_of(Question(INPUT, "q", ("a", "b"))) == (["a", "b", REJECT], None)
    options, params = form_of(Question(INPUT, "q"))
    assert options == [SEND, REJECT] and list(params) == ["answer"]
    options, params = form_of(Question(AUTH, "q"))
    assert options == [SEND_CREDENTIAL, REJECT] and list(params) == ["credential_source"]


def test_the_required_action_reads_as_text_not_json():
    task = parse(asking(options=["the animal", "the car maker"]))
    task.messages.insert(1, task.messages[-1].model_copy(update={"parts": [
        task.messages[-1].parts[0].model_copy(update={"content": "Searching the corpus..."})]}))
    body = required_action_body(question_of(task), task, round_number=1, max_rounds=2)
    assert "> Which jaguar?" in body and "question 1 of at most 2" in body
    assert "- Searching the corpus..." in body and "{" not in body
    assert required_action_subject(Question(INPUT, "x" * 300), "research") .startswith("research asks: xxx")
    assert len(required_action_subject(Question(INPUT, "x" * 300), "research")) < 150


def ask_op(previous, **kwargs) -> AgentVaultAskPersonOperator:
    return AgentVaultAskPersonOperator(task_id="ask_person_1", previous=previous, timing=FAST, **kwargs)


def test_a_result_without_a_question_passes_on_untouched(requests_mock):
    final = {"task_id": "t-1", "state": "COMPLETED", "text": "done", "metadata": {}}
    assert ask_op(final).execute(make_context()) == final
    assert not requests_mock.request_history


def test_the_stream_step_hands_a_question_on_instead_of_failing(requests_mock):
    requests_mock.post(RPC, **rpc_result(asking(options=["the animal", "the car maker"])))
    op = AgentVaultStreamOperator(task_id="stream", agent_task_id="t-1", timing=FAST, ask_person=True)
    result = op.execute(make_context())
    assert result["state"] == "INPUT_REQUIRED"
    assert result["question"] == {"kind": INPUT, "text": "Which jaguar?", "options": ["the animal", "the car maker"]}
    without = AgentVaultStreamOperator(task_id="stream", agent_task_id="t-1", timing=FAST)
    with pytest.raises(errors.InputRequiredError, match="Which jaguar"):
        without.execute(make_context())


def test_a_question_asks_a_person_with_the_agents_words(requests_mock):
    requests_mock.post(RPC, **rpc_result(asking(options=["the animal", "the car maker"])))
    previous = {"task_id": "t-1", "state": "INPUT_REQUIRED", "question": {"kind": INPUT, "text": "Which jaguar?"}}
    with mock.patch("airflow_agentvault.operators.ask_person.wait_for_person") as wait:
        ask_op(previous, max_rounds=2).execute(make_context())
    asked = wait.call_args.kwargs
    assert asked["options"] == ["the animal", "the car maker", REJECT] and asked["method_name"] == "answer_received"
    assert asked["subject"] == "agentvault_default asks: Which jaguar?"
    assert asked["kwargs"]["agent_task_id"] == "t-1" and asked["kwargs"]["question"]["options"]


def test_an_earlier_try_that_answered_already_is_followed_not_asked_again(requests_mock):
    done = task_json("t-1", "COMPLETED", agent_text="the car maker it is")
    requests_mock.post(RPC, **rpc_result(done))
    previous = {"task_id": "t-1", "state": "INPUT_REQUIRED", "question": {"kind": INPUT, "text": "Which jaguar?"}}
    with mock.patch("airflow_agentvault.operators.ask_person.wait_for_person") as wait:
        result = ask_op(previous).execute(make_context())
    assert not wait.called and result["state"] == "COMPLETED"


def answered(requests_mock, question: Question, event: dict, *, finals: list[dict], max_rounds: int = 2):
    """Resume a round with ``event``; the agent answers the send, then each get from ``finals``."""
    sent = []

    def respond(request, context):
        body = request.json()
        if body["method"] == "tasks/send":
            sent.append(body["params"])
            return {"jsonrpc": "2.0", "id": "x", "result": {"id": "t-1"}}
        if body["method"] == "tasks/cancel":
            sent.append("cancel")
            return {"jsonrpc": "2.0", "id": "x", "result": {"success": True}}
        return {"jsonrpc": "2.0", "id": "x", "result": finals.pop(0) if len(finals) > 1 else finals[0]}

    requests_mock.post(RPC, json=respond, headers={"Content-Type": "application/json"})
    context = make_context()
    context["ti"].xcom_pull.side_effect = lambda **kw: context["ti"].xcom_push.call_args.kwargs["value"]
    op = ask_op({"task_id": "t-1", "metadata": {"questions": [{"round": 0, "question": "q0", "answer": "a0"}]}},
                max_rounds=max_rounds)
    return op.answer_received(context, event, "t-1", None, question.to_dict()), sent, context


def test_the_answer_goes_to_the_same_task_and_the_round_is_recorded(requests_mock):
    result, sent, context = answered(
        requests_mock, Question(INPUT, "Which jaguar?", ("the animal", "the car maker")),
        {"chosen_options": ["the car maker"], "params_input": {}, "responded_by_user": {"id": "1", "name": "ada"}},
        finals=[task_json("t-1", "COMPLETED", agent_text="Reading chosen: the car maker")])
    assert sent[0]["id"] == "t-1"
    assert [p.get("content") for p in sent[0]["message"]["parts"]] == ["the car maker", {"answer": "the car maker"}]
    assert result["state"] == "COMPLETED"
    assert result["metadata"]["questions"] == [
        {"round": 0, "question": "q0", "answer": "a0"},
        {"round": 1, "question": "Which jaguar?", "answer": "the car maker", "answered_by": "ada"}]
    assert context["ti"].xcom_push.call_args.kwargs["key"] == ROUND_KEY


def test_a_credential_is_read_from_the_named_connection_and_never_shown(requests_mock, capsys):
    result, sent, _ = answered(
        requests_mock, Question(AUTH, "Sign in to the partner archive"),
        {"chosen_options": [SEND_CREDENTIAL], "params_input": {"credential_source": "partner_vault"}},
        finals=[task_json("t-1", "COMPLETED", agent_text="thanks")])
    assert sent[0]["message"]["parts"][1]["content"] == {"credential": SECRET}
    assert result["metadata"]["questions"][-1]["answer"] == "credential from partner_vault"
    assert SECRET not in json.dumps(result) and SECRET not in capsys.readouterr().out


@pytest.mark.parametrize("event, why", [
    ({"chosen_options": [REJECT], "params_input": {}}, "a person rejected it"),
    ({"error": "timeout", "error_type": "timeout"}, "nobody answered it in time"),
])
def test_a_rejection_or_no_answer_cancels_the_remote_task(requests_mock, event, why):
    with pytest.raises(errors.QuestionUnansweredError, match=f"{why}.*Which jaguar"):
        answered(requests_mock, Question(INPUT, "Which jaguar?"), event, finals=[asking()])
    assert [r.json()["method"] for r in requests_mock.request_history] == ["tasks/cancel"]


def test_a_question_after_the_last_round_cancels_and_names_it(requests_mock):
    with pytest.raises(errors.TooManyQuestionsError, match="after 1 round.*And which year"):
        answered(requests_mock, Question(INPUT, "Which jaguar?"),
                 {"chosen_options": [SEND], "params_input": {"answer": "the animal"}},
                 finals=[asking(text="And which year?")], max_rounds=1)
    assert "tasks/cancel" in [r.json()["method"] for r in requests_mock.request_history]


def test_an_empty_free_text_answer_is_refused():
    op = ask_op({})
    with pytest.raises(errors.QuestionUnansweredError, match="empty"):
        op.answer_of(Question(INPUT, "Which decade?"), [SEND], {"answer": "  "})


def test_a_question_with_big_artifacts_still_travels_in_xcom(requests_mock):
    big = asking(options=["the animal", "the car maker"])
    big["artifacts"] = [{"id": "draft", "type": "notes", "content": {"text": "x" * 20_000}}]
    requests_mock.post(RPC, **rpc_result(big))
    op = AgentVaultStreamOperator(task_id="stream", agent_task_id="t-1", timing=FAST, ask_person=True,
                                  max_result_bytes=4_000)
    result = op.execute(make_context())
    assert result["question"]["options"] == ["the animal", "the car maker"]
    assert result["artifacts"][0]["content_truncated"] is True
