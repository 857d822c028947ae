"""
Timing as DAG params: a ready ``params`` dict for DAG authors and the templates that read it back.

Each knob of :class:`~airflow_agentvault.protocol.timing.Timing` becomes an Airflow ``Param`` with the
model's bounds as JSON schema and its description, so the trigger form explains every value; operators
receive ``"{{ params.<name> }}"`` and validate the rendered values again at run time.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from airflow_agentvault.protocol.timing import PRESETS, Timing

TIMING_FIELDS = tuple(Timing.model_fields)


def _schema_for(name: str) -> dict[str, Any]:
    field = Timing.model_fields[name]
    schema: dict[str, Any] = {"type": "integer" if field.annotation is int else "number"}
    for meta in field.metadata:
        if getattr(meta, "ge", None) is not None:
            schema["minimum"] = meta.ge
        if getattr(meta, "gt", None) is not None:
            schema["exclusiveMinimum"] = meta.gt
    return schema


def title_of(name: str) -> str:
    """The form's title of a knob, with its unit: seconds, a count, or a factor."""
    words = name.replace("_", " ")
    if Timing.model_fields[name].annotation is int:
        return f"{words} (count)"
    return f"{words} (factor)" if name.endswith("backoff") else f"{words} (seconds)"


def timing_params(preset: str = "fast", prefix: str = "", **overrides: Any) -> dict[str, Param]:
    """
    ``Param`` objects for every timing knob, defaults from ``preset`` (``fast`` or ``slow_llm``).

    :param prefix: prepended to each param name, for per-stage knobs (``"extract_"``).
    :param overrides: default values to change, by knob name.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown timing preset {preset!r}; choose one of {', '.join(PRESETS)}")
    defaults = Timing.parse(overrides, base=PRESETS[preset])
    return {
        f"{prefix}{name}": Param(
            getattr(defaults, name),
            description=Timing.model_fields[name].description,
            title=title_of(name),
            **_schema_for(name),
        )
        for name in TIMING_FIELDS
    }


def timing_from_params(prefix: str = "", **fixed: Any) -> dict[str, Any]:
    """Templates that read each knob from ``params`` at run time; ``fixed`` values override per stage."""
    values: dict[str, Any] = {name: f"{{{{ params.{prefix}{name} }}}}" for name in TIMING_FIELDS}
    values.update(fixed)
    return values
