"""The timing model and its DAG params: defaults, the slow_llm preset, validation and the Param schema."""

from __future__ import annotations

import pytest
from airflow.sdk import Param

from airflow_agentvault.compat import ParamValidationError
from airflow_agentvault.params import TIMING_FIELDS, timing_from_params, timing_params
from airflow_agentvault.protocol.timing import PRESETS, SLOW_LLM, InvalidTimingError, Timing

# -- the model ---------------------------------------------------------------------------------


def test_defaults_are_fast():
    timing = Timing()
    assert timing.initial_delay == 0
    assert timing.verify_interval <= 0.5
    assert timing.sse_retry_delay <= 1
    assert timing.verify_attempts >= 1 and timing.sse_attempts >= 1
    assert PRESETS["fast"] == timing


def test_slow_llm_preset_has_the_seed_values():
    assert SLOW_LLM.initial_delay == 10.0
    assert SLOW_LLM.verify_attempts == 3
    assert SLOW_LLM.sse_attempts == 3
    assert SLOW_LLM.sse_retry_delay == 5.0
    # a fixed-sleep orchestrator waited 5 s between subscriptions: no backoff
    assert [SLOW_LLM.sse_delay_for(n) for n in (1, 2, 3)] == [5.0, 5.0, 5.0]
    assert PRESETS["slow_llm"] is SLOW_LLM


def test_timing_is_immutable():
    with pytest.raises(Exception):
        Timing().initial_delay = 5  # type: ignore[misc]


def test_parse_coerces_templated_strings():
    timing = Timing.parse({"initial_delay": "0.5", "verify_attempts": "3", "overall_timeout": "60"})
    assert timing.initial_delay == 0.5 and isinstance(timing.initial_delay, float)
    assert timing.verify_attempts == 3 and isinstance(timing.verify_attempts, int)
    assert timing.overall_timeout == 60.0


def test_parse_none_and_empty_keep_the_base():
    timing = Timing.parse({"initial_delay": None, "verify_attempts": "", "sse_attempts": 5}, base=SLOW_LLM)
    assert timing.initial_delay == SLOW_LLM.initial_delay
    assert timing.verify_attempts == SLOW_LLM.verify_attempts
    assert timing.sse_attempts == 5
    assert timing.read_timeout == SLOW_LLM.read_timeout


def test_parse_without_values_is_the_default_or_the_base():
    assert Timing.parse() == Timing()
    assert Timing.parse(None, base=SLOW_LLM) == SLOW_LLM


@pytest.mark.parametrize(
    "values, name",
    [
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": "-0.5"}, "initial_delay"),
        ({"verify_attempts": 0}, "verify_attempts"),
        ({"verify_attempts": "-3"}, "verify_attempts"),
        ({"sse_attempts": 0}, "sse_attempts"),
        ({"verify_attempts": "2.5"}, "verify_attempts"),
        ({"verify_interval": 0}, "verify_interval"),
        ({"poll_interval": "0"}, "poll_interval"),
        ({"read_timeout": -5}, "read_timeout"),
        ({"overall_timeout": "soon"}, "overall_timeout"),
        ({"poll_interval": "{{ params.poll_interval }}"}, "poll_interval"),
        ({"verify_backoff": 0.5}, "verify_backoff"),
        ({"sse_retry_backoff": "0.9"}, "sse_retry_backoff"),
        ({"sse_retry_delay": -1}, "sse_retry_delay"),
        ({"initial_dealy": 1}, "initial_dealy"),
    ],
)
def test_parse_rejects_bad_values_naming_the_param(values, name):
    with pytest.raises(InvalidTimingError) as info:
        Timing.parse(values)
    assert f"param '{name}'" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_names_every_bad_param():
    with pytest.raises(InvalidTimingError) as info:
        Timing.parse({"initial_delay": -1, "sse_attempts": 0})
    assert "param 'initial_delay'" in str(info.value) and "param 'sse_attempts'" in str(info.value)


def test_unknown_key_message_says_it_is_unknown():
    with pytest.raises(InvalidTimingError, match="(?i)extra inputs are not permitted"):
        Timing.parse({"bogus": 1})


def test_verify_interval_grows_and_caps():
    timing = Timing(verify_interval=0.5, verify_backoff=2, verify_max_interval=3)
    assert [timing.verify_interval_for(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert timing.verify_interval_for(0) == 0.5  # attempts are 1-based; 0 is treated as the first


def test_verify_interval_without_backoff_is_constant():
    timing = Timing(verify_interval=5, verify_backoff=1, verify_max_interval=5)
    assert {timing.verify_interval_for(n) for n in range(1, 10)} == {5}


def test_sse_delay_backs_off():
    timing = Timing(sse_retry_delay=0.5, sse_retry_backoff=2)
    assert [timing.sse_delay_for(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_default_sse_delays_grow():
    timing = Timing()
    delays = [timing.sse_delay_for(n) for n in range(1, timing.sse_attempts + 1)]
    assert delays == sorted(delays) and delays[-1] > delays[0]


# -- DAG params --------------------------------------------------------------------------------


def test_timing_fields_are_every_model_field():
    assert set(TIMING_FIELDS) == set(Timing.model_fields)


def test_timing_params_one_param_per_field_with_description():
    params = timing_params()
    assert set(params) == set(Timing.model_fields)
    for name, param in params.items():
        assert isinstance(param, Param), name
        assert param.description == Timing.model_fields[name].description
        assert param.description, name
        assert param.value == getattr(Timing(), name)


@pytest.mark.parametrize(
    "name, schema",
    [
        ("initial_delay", {"type": "number", "minimum": 0}),
        ("verify_attempts", {"type": "integer", "minimum": 1}),
        ("sse_attempts", {"type": "integer", "minimum": 1}),
        ("verify_interval", {"type": "number", "exclusiveMinimum": 0}),
        ("verify_backoff", {"type": "number", "minimum": 1}),
        ("sse_retry_delay", {"type": "number", "minimum": 0}),
        ("poll_interval", {"type": "number", "exclusiveMinimum": 0}),
        ("overall_timeout", {"type": "number", "exclusiveMinimum": 0}),
    ],
)
def test_timing_params_schema_bounds(name, schema):
    param = timing_params()[name]
    for key, value in schema.items():
        assert param.schema[key] == value, (name, key)
    assert not ({"minimum", "exclusiveMinimum"} <= set(param.schema))


def test_timing_params_schema_matches_the_model_for_every_field():
    params = timing_params()
    for name, field in Timing.model_fields.items():
        schema = params[name].schema
        assert schema["type"] == ("integer" if field.annotation is int else "number"), name
        assert "minimum" in schema or "exclusiveMinimum" in schema, name


def test_timing_params_slow_llm_preset():
    params = timing_params("slow_llm")
    for name in Timing.model_fields:
        assert params[name].value == getattr(SLOW_LLM, name), name
    assert params["initial_delay"].value == 10.0


def test_timing_params_prefix():
    params = timing_params(prefix="extract_")
    assert set(params) == {f"extract_{name}" for name in Timing.model_fields}


def test_timing_params_overrides_are_validated_and_applied():
    params = timing_params("slow_llm", initial_delay="2.5", sse_attempts=1)
    assert params["initial_delay"].value == 2.5
    assert params["sse_attempts"].value == 1
    assert params["verify_attempts"].value == SLOW_LLM.verify_attempts
    with pytest.raises(InvalidTimingError, match="param 'sse_attempts'"):
        timing_params(sse_attempts=0)
    with pytest.raises(InvalidTimingError, match="param 'nonsense'"):
        timing_params(nonsense=1)


def test_timing_params_unknown_preset():
    with pytest.raises(ValueError, match="unknown timing preset 'turbo'") as info:
        timing_params("turbo")
    assert "fast" in str(info.value) and "slow_llm" in str(info.value)


def test_param_resolve_enforces_the_bounds():
    params = timing_params()
    assert params["initial_delay"].resolve(1.5) == 1.5
    assert params["verify_attempts"].resolve(4) == 4
    with pytest.raises(ParamValidationError):
        params["initial_delay"].resolve(-1)
    with pytest.raises(ParamValidationError):
        params["verify_attempts"].resolve(0)
    with pytest.raises(ParamValidationError):
        params["verify_attempts"].resolve(2.5)
    with pytest.raises(ParamValidationError):
        params["poll_interval"].resolve(0)
    with pytest.raises(ParamValidationError):
        params["poll_interval"].resolve("fast")


def test_param_defaults_pass_their_own_validation():
    for preset in PRESETS:
        for name, param in timing_params(preset).items():
            assert param.resolve() == param.value, (preset, name)


def test_params_serialize_with_their_schema():
    dumped = timing_params()["verify_attempts"].dump()
    assert dumped["schema"]["type"] == "integer"
    assert dumped["description"]


def test_timing_from_params_templates():
    values = timing_from_params()
    assert set(values) == set(Timing.model_fields)
    assert values["initial_delay"] == "{{ params.initial_delay }}"
    assert values["verify_attempts"] == "{{ params.verify_attempts }}"


def test_timing_from_params_prefix_and_fixed_overrides():
    values = timing_from_params(prefix="extract_", initial_delay=0, sse_attempts=1)
    assert values["poll_interval"] == "{{ params.extract_poll_interval }}"
    assert values["initial_delay"] == 0
    assert values["sse_attempts"] == 1


def test_rendered_templates_parse_back():
    rendered = {name: str(getattr(SLOW_LLM, name)) for name in timing_from_params()}
    assert Timing.parse(rendered) == SLOW_LLM


def test_timing_that_is_not_a_mapping_is_a_clear_error():
    from airflow_agentvault.protocol.timing import InvalidTimingError, Timing

    with pytest.raises(InvalidTimingError, match="mapping of knob names"):
        Timing.parse("{'poll_interval': 1}")
