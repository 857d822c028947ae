"""
An agent's question answered by a person through Airflow's REST API, under a real scheduler and triggerer.

While the question waits, the task sits in ``awaiting_input``: no worker slot, no trigger. The answer
goes to the same remote task, which the stage then follows to its final result; a rejection and an
unanswered question each cancel the remote task; a question beyond the round bound fails the stage.
"""

from __future__ import annotations

import json
import time

import pytest

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from agentvault_stack.testing import AirflowStack
from airflow_agentvault.compat import AIRFLOW_V_3_3_PLUS
from airflow_agentvault.operators.ask_person import REJECT, SEND
from airflow_agentvault.protocol.client import AgentClient

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="awaiting_input came with Airflow 3.3")]

DAG_ID, ROUNDS_DAG = "agentvault_asking_probe", "agentvault_asking_rounds"
QUESTION = "Which decade should the research cover?"
SECRET = "s3cret-token-value"
DAG = f'''
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.stage import agent_stage

asks = {{"reference_agent": {{"input_required": True, "input_question": "{QUESTION}"}}}}
with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params=timing_params("fast")):
    agent_stage("split", text="tidal energy", message_metadata=asks, ask_person=True, deferrable=True,
                timing_overrides={{"poll_interval": 0.2}})
    agent_stage("compact", text="tidal energy", message_metadata=asks, ask_person=True, compact=True,
                max_rounds=1, timing_overrides={{"poll_interval": 0.2}})
    agent_stage("unanswered", text="tidal energy", message_metadata=asks, ask_person=True, max_rounds=1,
                response_timeout=timedelta(seconds=1), timing_overrides={{"poll_interval": 0.2}})
with DAG("{ROUNDS_DAG}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params=timing_params("fast")):
    rounds = [{{"text": "Which mercury do you mean?", "options": ["the planet", "the element"]}}, "{QUESTION}"]
    agent_stage("two_rounds", text="mercury", ask_person=True, max_rounds=2, deferrable=True,
                message_metadata={{"reference_agent": {{"questions": rounds}}}})
    agent_stage("three_rounds", text="mercury", ask_person=True, max_rounds=2,
                message_metadata={{"reference_agent": {{"questions": [*rounds, "And which region?"]}}}})
    agent_stage("credential", text="private data", ask_person=True, max_rounds=1,
                message_metadata={{"reference_agent": {{"require_credential": "{SECRET}"}}}})
'''


@pytest.fixture(scope="module")
def agent():
    with ReferenceAgentServer(AgentBehaviour(work_seconds=0.4)) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory, agent):
    home = tmp_path_factory.mktemp("asking-stack")
    dags = tmp_path_factory.mktemp("asking-dags")
    (dags / "asking_probe.py").write_text(DAG)
    conn = json.dumps({"conn_type": "agentvault", "host": agent.rpc_url})
    vault = json.dumps({"conn_type": "generic", "password": SECRET})
    with AirflowStack(home=home, dags_folder=dags, extra_env={"AIRFLOW_CONN_AGENTVAULT_DEFAULT": conn,
                                                              "AIRFLOW_CONN_PARTNER_VAULT": vault}) as running:
        running.wait_for_dag(DAG_ID, timeout=90)
        running.wait_for_dag(ROUNDS_DAG, timeout=90)
        yield running


def wait_for_state(stack: AirflowStack, run_id: str, task_id: str, wanted: str, timeout: float = 120,
                   dag_id: str = DAG_ID) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = stack.task_states(dag_id, run_id).get(task_id)
        if seen == wanted:
            return
        if seen in ("failed", "upstream_failed"):
            break
        time.sleep(0.3)
    raise AssertionError(f"{task_id} is {seen}, not {wanted}\n{stack.task_log(dag_id, run_id, task_id)}\n"
                         f"{stack.diagnostics()}")


def wait_until_parked(stack: AirflowStack, run_id: str, task_id: str, timeout: float = 120,
                      dag_id: str = DAG_ID) -> None:
    """The question waits and the scheduler has seen the asking process end.

    A person answers seconds later; an answer faster than the scheduler's loop would race Airflow's own
    check that a finished worker process left its task in a waiting state (it takes the resumed task for
    one killed externally), so the test answers as a person would: after the scheduler noticed.
    """
    wait_for_state(stack, run_id, task_id, "awaiting_input", timeout, dag_id)
    seen = f"dag_id={dag_id}, task_id={task_id}, run_id={run_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(seen in line and "state=awaiting_input" in line for line in stack.component_log("scheduler").splitlines()
               if "TaskInstance Finished" in line):
            return
        time.sleep(0.3)
    raise AssertionError(f"the scheduler never saw {task_id} park\n{stack.diagnostics()}")


def hitl_path(run_id: str, task_id: str, dag_id: str = DAG_ID) -> str:
    return f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"


def test_a_person_answers_and_the_stage_ends_with_the_agents_result(stack, agent):
    run_id = stack.trigger(DAG_ID)
    for task_id in ("split.ask_person_1", "compact.ask_person_1"):
        wait_until_parked(stack, run_id, task_id)
    wait_for_state(stack, run_id, "unanswered.ask_person_1", "failed")  # its question timed out
    # while the questions wait, nothing holds a worker slot or a trigger
    waiting = [r for r in stack.task_instance_rows(DAG_ID, run_id) if r["state"] == "awaiting_input"]
    assert len(waiting) >= 2 and all(r["trigger_id"] is None for r in waiting)
    assert not [r for r in stack.task_instance_rows(DAG_ID, run_id) if r["state"] in ("running", "queued")]
    assert not stack.triggers()

    detail = stack.api("GET", hitl_path(run_id, "split.ask_person_1"))
    assert QUESTION in detail["subject"] and QUESTION in detail["body"]
    assert detail["options"] == [SEND, REJECT]
    stack.api("PATCH", hitl_path(run_id, "split.ask_person_1"),
              json_body={"chosen_options": [SEND], "params_input": {"answer": "the 2010s"}})
    stack.api("PATCH", hitl_path(run_id, "compact.ask_person_1"),
              json_body={"chosen_options": [REJECT], "params_input": {"answer": ""}})

    assert stack.wait_for_run(DAG_ID, run_id, timeout=180) == "failed"  # the rejected and the unanswered stage
    states = stack.task_states(DAG_ID, run_id)
    assert states["split.ask_person_1"] == "success", stack.task_log(DAG_ID, run_id, "split.ask_person_1")
    assert states["split.ask_person_2"] == "success", stack.task_log(DAG_ID, run_id, "split.ask_person_2")
    assert states["compact.ask_person_1"] == "failed" and states["unanswered.ask_person_1"] == "failed"

    result = stack.xcom(DAG_ID, run_id, "split.ask_person_2")
    assert result["state"] == "COMPLETED" and "question" not in result
    assert [(r["question"], r["answer"]) for r in result["metadata"]["questions"]] == [(QUESTION, "the 2010s")]
    client = AgentClient(agent.rpc_url)
    answered = client.get(result["task_id"])
    assert any(m.role == "user" and m.text == "the 2010s" for m in answered.messages)
    for task_id in ("compact.run", "unanswered.stream"):
        asked = stack.xcom(DAG_ID, run_id, task_id)
        assert client.get(asked["task_id"]).state.value == "CANCELED", task_id
    assert "went unanswered (a person rejected it)" in stack.task_log(DAG_ID, run_id, "compact.ask_person_1")
    assert "went unanswered (nobody answered it in time)" in stack.task_log(DAG_ID, run_id,
                                                                            "unanswered.ask_person_1")


def answer(stack: AirflowStack, run_id: str, task_id: str, option: str, **form: str) -> dict:
    wait_until_parked(stack, run_id, task_id, dag_id=ROUNDS_DAG)
    path = hitl_path(run_id, task_id, ROUNDS_DAG)
    detail = stack.api("GET", path)
    stack.api("PATCH", path, json_body={"chosen_options": [option], "params_input": form})
    return detail


def test_two_rounds_with_options_a_third_is_refused_and_credentials_stay_secret(stack, agent):
    run_id = stack.trigger(ROUNDS_DAG)
    first = answer(stack, run_id, "two_rounds.ask_person_1", "the planet")
    assert first["options"] == ["the planet", "the element", REJECT]
    assert "Which mercury do you mean?" in first["body"]
    second = answer(stack, run_id, "two_rounds.ask_person_2", SEND, answer="the 1990s")
    assert QUESTION in second["body"] and "question 2 of at most 2" in second["body"]
    answer(stack, run_id, "three_rounds.ask_person_1", "the element")
    answer(stack, run_id, "three_rounds.ask_person_2", SEND, answer="the 1990s")
    credential = answer(stack, run_id, "credential.ask_person_1", "Send credential", credential_source="partner_vault")
    assert credential["params"]["credential_source"]["value"] == ""
    stack.wait_for_run(ROUNDS_DAG, run_id, timeout=180)
    states = stack.task_states(ROUNDS_DAG, run_id)
    assert states["two_rounds.ask_person_2"] == "success", stack.task_log(ROUNDS_DAG, run_id, "two_rounds.ask_person_2")
    result = stack.xcom(ROUNDS_DAG, run_id, "two_rounds.ask_person_2")
    assert result["state"] == "COMPLETED" and "Answers: the planet; the 1990s" in result["text"]
    assert [r["answer"] for r in result["metadata"]["questions"]] == ["the planet", "the 1990s"]
    first_log = stack.task_log(ROUNDS_DAG, run_id, "two_rounds.ask_person_1")
    assert "The agent asks (round 1 of 2): Which mercury do you mean? [options: the planet, the element]" in first_log
    assert "answered: the planet; sent to task" in first_log

    assert states["three_rounds.ask_person_2"] == "failed"
    refused = stack.task_log(ROUNDS_DAG, run_id, "three_rounds.ask_person_2")
    assert "TooManyQuestionsError" in refused and "And which region?" in refused
    asked = stack.xcom(ROUNDS_DAG, run_id, "three_rounds.ask_person_1")
    assert AgentClient(agent.rpc_url).get(asked["task_id"]).state.value == "CANCELED"

    assert states["credential.ask_person_1"] == "success", stack.task_log(ROUNDS_DAG, run_id, "credential.ask_person_1")
    done = stack.xcom(ROUNDS_DAG, run_id, "credential.ask_person_1")
    assert done["metadata"]["questions"][0]["answer"] == "credential from partner_vault"
    stored = stack.api("GET", hitl_path(run_id, "credential.ask_person_1", ROUNDS_DAG))
    everything = json.dumps([done, stored]) + "".join(stack.task_log(ROUNDS_DAG, run_id, t) for t in states)
    assert SECRET not in everything
