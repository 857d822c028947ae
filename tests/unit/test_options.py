"""The one owner of stage options: keywords sorted by step from the operators' signatures, timing fixed once."""

from __future__ import annotations

import inspect
import json
import textwrap

import pytest
import yaml
from airflow.sdk import DAG

from airflow_agentvault.compat import AirflowFailException
from airflow_agentvault.decorators.agentvault import agentvault_task
from airflow_agentvault.operators.agentvault import FollowingOperator
from airflow_agentvault.operators.options import StageOptions, roles
from airflow_agentvault.operators.stage_timing import StageTiming
from airflow_agentvault.pipelines.factory import build_dag
from airflow_agentvault.pipelines.spec import SpecError, parse_spec
from airflow_agentvault.pipelines.stage import agent_stage
from airflow_agentvault.protocol.timing import Timing

#: A value unlike the default for every follow-only keyword; a new one fails the test until it is listed.
FOLLOW_ONLY_VALUES = {"cancel_on_kill": False, "max_result_bytes": 1234, "truncate_result": True,
                      "result_storage": "memory://stage-results", "ask_person": True, "multiple_outputs": True,
                      "do_xcom_push": False, "push": "on"}
MISSING = object()


def test_the_follow_only_keywords_are_read_from_the_operators():
    assert roles().follow_only == set(FOLLOW_ONLY_VALUES)
    assert {"durable", "text", "resend_if_unsure"} <= roles().send
    assert {"mode", "poke_interval", "timing", "deferrable"} <= roles().wait
    assert "retries" in roles().common and "task_id" not in roles().common


def assert_follow_only_reached_only(send, wait, follow, values=FOLLOW_ONLY_VALUES):
    for key, value in values.items():
        assert getattr(follow, key) == value, key
        assert getattr(send, key, MISSING) != value, f"{key} reached the send step"
        assert getattr(wait, key, MISSING) != value, f"{key} reached the sensor"


def test_agent_stage_split_form_gives_follow_only_keywords_to_the_follow_step_alone():
    with DAG("split_options", schedule=None) as dag:
        agent_stage("s", text="a", **FOLLOW_ONLY_VALUES)
    assert_follow_only_reached_only(dag.get_task("s.initiate"), dag.get_task("s.wait_until_visible"),
                                    dag.get_task("s.stream"))
    assert dag.get_task("s.ask_person_1").max_result_bytes == 1234  # the rounds follow too


def test_the_decorator_s_split_form_gives_follow_only_keywords_to_the_follow_step_alone():
    with DAG("decorated_options", schedule=None) as dag:
        @agentvault_task(compact=False, **FOLLOW_ONLY_VALUES)
        def ask() -> dict:
            return {"text": "hi"}

        ask()
    assert_follow_only_reached_only(dag.get_task("ask"), dag.get_task("ask_wait_until_visible"),
                                    dag.get_task("ask_stream"))


def test_a_spec_file_gives_follow_only_options_to_the_follow_step_alone():
    options = {k: v for k, v in FOLLOW_ONLY_VALUES.items() if k != "ask_person"}
    spec = parse_spec(yaml.safe_dump({"dag_id": "spec_options", "options": {"retries": 4}, "stages": [
        {"id": "s", "agent": "conn_a", "text": "a", "ask_person": True, "options": options}]}))
    dag = build_dag(spec)
    send, wait, follow = (dag.get_task(f"s.{t}") for t in ("initiate", "wait_until_visible", "stream"))
    assert_follow_only_reached_only(send, wait, follow)
    assert send.retries == wait.retries == follow.retries == 4  # Airflow's own keywords go to every step


def test_a_keyword_added_to_the_follow_step_is_sorted_without_touching_the_builders(monkeypatch):
    original = FollowingOperator.__init__

    def init(self, *, shiny: int = 0, **kwargs):
        self.shiny = shiny
        original(self, **kwargs)

    signature = inspect.signature(original)
    parameters = list(signature.parameters.values())
    parameters.insert(-1, inspect.Parameter("shiny", inspect.Parameter.KEYWORD_ONLY, default=0))
    init.__signature__ = signature.replace(parameters=parameters)
    monkeypatch.setattr(FollowingOperator, "__init__", init)
    roles.cache_clear()
    try:
        assert "shiny" in roles().follow_only
        with DAG("new_option", schedule=None) as dag:
            agent_stage("s", text="a", shiny=7)
        assert dag.get_task("s.stream").shiny == 7
    finally:
        roles.cache_clear()


def test_send_and_wait_options_reach_their_steps_and_airflow_s_reach_every_step():
    with DAG("sorted", schedule=None) as dag:
        agent_stage("s", text="a", durable=False, mode="reschedule", retries=3, resend_if_unsure=True)
    send, wait, follow = (dag.get_task(f"s.{t}") for t in ("initiate", "wait_until_visible", "stream"))
    assert send.durable is False and not hasattr(wait, "durable") and not hasattr(follow, "durable")
    assert wait.mode == "reschedule"
    assert send.retries == wait.retries == follow.retries == 3


@pytest.mark.parametrize("build", [
    lambda: agent_stage("s", text="a", max_result_byte=5),
    lambda: agent_stage("s", text="a", compact=True, max_result_byte=5),
    lambda: agentvault_task(compact=False, max_result_byte=5)(lambda: "hi"),
    lambda: agentvault_task(max_result_byte=5),
])
def test_an_unknown_keyword_is_a_type_error_that_names_it(build):
    with DAG("unknown", schedule=None), pytest.raises(TypeError, match="'max_result_byte'"):
        build()


def test_wired_keywords_and_split_only_keywords_in_a_compact_stage_are_refused():
    with pytest.raises(TypeError, match="agent_task_id is set by the stage"):
        StageOptions.sort({"agent_task_id": "x"})
    with pytest.raises(TypeError, match=r"'mode' \(the wait step\) only applies to the split form"):
        StageOptions.sort({"mode": "reschedule"}, compact=True)
    with pytest.raises(TypeError, match=r"'durable' \(the send step\) only applies to the split form"):
        StageOptions.sort({"durable": False}, compact=True)


def test_a_compact_stage_takes_send_and_follow_options_in_one_task():
    with DAG("compact_options", schedule=None) as dag:
        agent_stage("s", text="a", compact=True, cancel_on_kill=False, retries=2)
    task = dag.get_task("s")
    assert task.cancel_on_kill is False and task.retries == 2 and task.text == "a"


GOOD = """\
dag_id: mini
stages:
  - id: first
    agent: conn_a
    text: hi
    options: {max_result_bytes: 10}
"""


def test_a_spec_s_bad_options_are_reported_at_their_lines():
    message = str(pytest.raises(SpecError, parse_spec, GOOD.replace("max_result_bytes", "max_result_byte")).value)
    assert "<spec>:6: stages.0.options.max_result_byte: stage 'first': unknown option(s) 'max_result_byte'" in message
    message = str(pytest.raises(SpecError, parse_spec, GOOD.replace("max_result_bytes: 10", "text: x")).value)
    assert "stages.0.options.text: set 'text' with the spec's 'text'" in message
    compact = textwrap.dedent("""\
        dag_id: mini
        compact: true
        options: {mode: reschedule}
        stages: [{id: first, agent: conn_a}]
        """)
    message = str(pytest.raises(SpecError, parse_spec, compact).value)
    assert "<spec>:3: options.mode: stage 'first': 'mode' (the wait step) only applies to the split form" in message


def test_stage_timing_validates_once_and_fixes_the_deadline_once():
    begun = StageTiming.begin({"overall_timeout": "60", "poll_interval": None}, started_at=1000.0)
    assert begun.timing == Timing(overall_timeout=60) and begun.deadline == 1060.0
    assert StageTiming.begin(begun.timing).timing is begun.timing  # a validated Timing is not parsed again
    carried = begun.trigger_kwargs()
    assert json.loads(json.dumps(carried)) == carried
    assert StageTiming.carried(**carried) == begun
    with pytest.raises(AirflowFailException, match="param 'verify_attempts'"):
        StageTiming.begin({"verify_attempts": 0})
