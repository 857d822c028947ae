"""Pipeline spec validation: every problem is reported with its line, before any task is built."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from airflow_agentvault.pipelines.spec import SpecError, load_spec, parse_spec

GOOD = """\
dag_id: mini
params:
  topic: {default: solar}
stages:
  - id: first
    agent: conn_a
    text: "About {{ params.topic }}"
  - id: second
    agent: conn_b
    after: [first]
    timing: {poll_interval: 0.5}
"""


def spec_error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(textwrap.dedent(text), source="mini.yaml")
    return str(info.value)


def test_good_spec_parses_in_dependency_order():
    spec = parse_spec(GOOD)
    assert [s.id for s in spec.stage_order()] == ["first", "second"]
    assert spec.stages[1].timing == {"poll_interval": 0.5}


def test_the_shipped_spec_is_valid():
    spec = load_spec(Path(__file__).resolve().parents[2] / "dags" / "research_pipeline.yaml")
    assert len(spec.stages) == 7 and spec.publish.report == "edit"


def test_unknown_stage_reference_points_at_its_line():
    message = spec_error(GOOD.replace("after: [first]", "after: [frist]"))
    assert "mini.yaml:10: stages.1.after.0: unknown stage 'frist'" in message


def test_cycle_is_reported_with_its_path():
    text = GOOD.replace("    agent: conn_a\n", "    agent: conn_a\n    after: [second]\n")
    message = spec_error(text)
    assert "dependency cycle" in message and ("first -> second -> first" in message or "second -> first -> second" in message)


def test_unknown_param_in_a_template_points_at_its_line():
    message = spec_error(GOOD.replace("params.topic", "params.topik"))
    assert "mini.yaml:7: stages.0.text: unknown param 'topik'" in message


def test_timing_knobs_are_known_params_and_unknown_knobs_are_errors():
    assert parse_spec(GOOD.replace("About {{ params.topic }}", "{{ params.poll_interval }}"))
    message = spec_error(GOOD.replace("poll_interval: 0.5", "poll_intervall: 0.5"))
    assert "mini.yaml:11: stages.1.timing.poll_intervall: unknown timing knob" in message


def test_missing_connection_id_is_reported():
    message = spec_error(GOOD.replace("    agent: conn_b\n", ""))
    assert "mini.yaml:8: stages.1.agent: Field required" in message


def test_unknown_field_and_bad_yaml():
    assert "mini.yaml:6: stages.0.agnet: Extra inputs are not permitted" in spec_error(
        GOOD.replace("agent: conn_a", "agnet: conn_a")
    )
    assert "mini.yaml:3: not valid YAML" in spec_error("dag_id: x\nstages: [\n")


def test_several_problems_are_all_listed():
    text = GOOD.replace("after: [first]", "after: [nope]").replace("params.topic", "params.nothing")
    message = spec_error(text)
    assert "unknown stage 'nope'" in message and "unknown param 'nothing'" in message


def test_a_bad_spec_builds_no_dag(tmp_path):
    from airflow_agentvault.pipelines.factory import dag_from_spec

    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("after: [first]", "after: [zzz]"))
    with pytest.raises(SpecError, match="bad.yaml:10"):
        dag_from_spec(bad)


def test_bad_fixed_timing_values_are_reported_before_any_task_exists():
    message = spec_error(GOOD.replace("poll_interval: 0.5", "poll_interval: -5"))
    assert "mini.yaml:11: stages.1.timing.poll_interval: invalid timing: param 'poll_interval'" in message
    assert parse_spec(GOOD.replace("poll_interval: 0.5", 'poll_interval: "{{ params.poll_interval }}"'))
