"""
Pipeline spec files: YAML that names the stages, validated by pydantic with errors that point at lines.

A spec declares a DAG of agent stages (each with its connection, message template, timing overrides
and dependencies), the DAG params its templates may use and what to publish. Everything is checked
before a single task is built (unknown stage references, cycles, unknown params, missing fields), and
each problem is reported with the spec file's line, so a bad spec fails DAG parsing with a message a
person can act on and never yields a half-built DAG. The format is documented in docs/pipelines.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_agentvault.operators.options import StageOptions
from airflow_agentvault.pipelines.stage import DEFAULT_MAX_ROUNDS
from airflow_agentvault.protocol.timing import PRESETS, InvalidTimingError, Timing

_ID = r"^[A-Za-z][A-Za-z0-9_]*$"
_PARAM_REF = re.compile(r"params\.([A-Za-z_][A-Za-z0-9_]*)")
#: Stage options a spec sets with keys of its own (option -> the spec's key).
SET_BY_SPEC = {"agentvault_conn_id": "agent", "text": "text", "data": "data", "timing": "timing",
               "deferrable": "deferrable", "ask_person": "ask_person"}


class SpecError(ValueError):
    """A spec problem, with the file and line it is on."""


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Any = None
    type: str = "string"
    description: str | None = None


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID)
    agent: str = Field(min_length=1, description="the stage's agentvault connection id")
    text: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    timing: dict[str, Any] = Field(default_factory=dict)
    compact: bool | None = None
    ask_person: bool | None = Field(None, description="a person answers the agent's questions (default: the pipeline's)")
    options: dict[str, Any] = Field(default_factory=dict, description="keywords of the stage's operators")


class PublishSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report: str
    chart: str | None = None


class PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dag_id: str = Field(pattern=_ID)
    description: str | None = None
    doc_md: str | None = None
    tags: list[str] = Field(default_factory=list)
    timing_preset: str = "fast"
    compact: bool = False
    deferrable: bool | None = None
    ask_person: bool = False
    max_rounds: int = Field(DEFAULT_MAX_ROUNDS, ge=1, description="rounds of questions a stage answers")
    response_timeout: float | None = Field(None, gt=0, description="seconds a person may take to answer")
    options: dict[str, Any] = Field(default_factory=dict, description="keywords of every stage's operators")
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    stages: list[StageSpec] = Field(min_length=1)
    publish: PublishSpec | None = None

    def options_of(self, stage: StageSpec) -> dict[str, Any]:
        """The stage's options: the pipeline's, then the stage's own."""
        return {**self.options, **stage.options}

    def compact_of(self, stage: StageSpec) -> bool:
        return self.compact if stage.compact is None else stage.compact

    def stage_order(self) -> list[StageSpec]:
        """Stages in dependency order (validated to be acyclic by :func:`load_spec`)."""
        by_id = {s.id: s for s in self.stages}
        done: list[StageSpec] = []
        seen: set[str] = set()

        def visit(stage: StageSpec) -> None:
            if stage.id in seen:
                return
            seen.add(stage.id)
            for upstream in stage.after:
                visit(by_id[upstream])
            done.append(stage)

        for stage in self.stages:
            visit(stage)
        return done


# -- line numbers -------------------------------------------------------------------------------


def _line_index(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    """Map every path in the YAML document (keys and list indexes) to its 1-based line."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = path + (key.value,)
            lines[child] = key.start_mark.line + 1
            for sub, line in _line_index(value, child).items():
                lines.setdefault(sub, line)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            lines.update(_line_index(value, path + (index,)))
    return lines


def _line_of(lines: dict[tuple, int], path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _where(source: str, lines: dict[tuple, int], path: tuple) -> str:
    shown = ".".join(str(p) for p in path) or "<top>"
    return f"{source}:{_line_of(lines, path)}: {shown}"


# -- loading ------------------------------------------------------------------------------------


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate a spec file; raise :class:`SpecError` listing every problem with its line."""
    path = Path(path)
    return parse_spec(path.read_text(), source=path.name)


def parse_spec(text: str, *, source: str = "<spec>") -> PipelineSpec:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise SpecError(f"{source}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if node is None or not isinstance(data, dict):
        raise SpecError(f"{source}:1: a pipeline spec must be a mapping with 'dag_id' and 'stages'")
    lines = _line_index(node)
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_where(source, lines, tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise SpecError("invalid pipeline spec:\n  " + "\n  ".join(problems)) from None
    problems = _check_graph(spec, source, lines) + _check_params(spec, source, lines) + _check_options(spec, source, lines)
    if problems:
        raise SpecError("invalid pipeline spec:\n  " + "\n  ".join(problems))
    return spec


def _check_graph(spec: PipelineSpec, source: str, lines: dict[tuple, int]) -> list[str]:
    problems: list[str] = []
    ids: dict[str, int] = {}
    for index, stage in enumerate(spec.stages):
        if stage.id in ids:
            problems.append(f"{_where(source, lines, ('stages', index, 'id'))}: duplicate stage id '{stage.id}'")
        ids.setdefault(stage.id, index)
        for ref_index, upstream in enumerate(stage.after):
            if upstream not in {s.id for s in spec.stages}:
                problems.append(f"{_where(source, lines, ('stages', index, 'after', ref_index))}: "
                                f"unknown stage '{upstream}' (known: {', '.join(s.id for s in spec.stages)})")
    if spec.publish:
        for key in ("report", "chart"):
            ref = getattr(spec.publish, key)
            if ref and ref not in ids:
                problems.append(f"{_where(source, lines, ('publish', key))}: unknown stage '{ref}'")
    if problems:
        return problems
    cycle = _find_cycle(spec)
    if cycle:
        first = ids[cycle[0]]
        problems.append(f"{_where(source, lines, ('stages', first, 'after'))}: dependency cycle "
                        f"{' -> '.join(cycle + [cycle[0]])}")
    return problems


def _find_cycle(spec: PipelineSpec) -> list[str] | None:
    after = {s.id: s.after for s in spec.stages}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for upstream in after[node]:
            if state.get(upstream) == 1:
                return stack[stack.index(upstream):]
            if upstream not in state and (found := visit(upstream)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in after:
        if node not in state and (found := visit(node)):
            return found
    return None


def _check_params(spec: PipelineSpec, source: str, lines: dict[tuple, int]) -> list[str]:
    known = set(spec.params) | set(Timing.model_fields)
    problems: list[str] = []
    if spec.timing_preset not in PRESETS:
        problems.append(f"{_where(source, lines, ('timing_preset',))}: unknown preset '{spec.timing_preset}' "
                        f"(choose {', '.join(PRESETS)})")
    for index, stage in enumerate(spec.stages):
        for key, value in stage.timing.items():
            where = _where(source, lines, ("stages", index, "timing", key))
            if key not in Timing.model_fields:
                problems.append(f"{where}: unknown timing knob '{key}' (known: {', '.join(Timing.model_fields)})")
            elif not (isinstance(value, str) and "{{" in value):  # templates are checked when they render
                try:
                    Timing.parse({key: value})
                except InvalidTimingError as exc:
                    problems.append(f"{where}: {exc}")
        for path, value in _strings(stage.model_dump(include={"text", "data", "timing"}), ("stages", index)):
            for name in _PARAM_REF.findall(value):
                if name not in known:
                    problems.append(f"{_where(source, lines, path)}: unknown param '{name}' "
                                    f"(declare it under 'params')")
    return problems


def _check_options(spec: PipelineSpec, source: str, lines: dict[tuple, int]) -> list[str]:
    """Each option as the stage builder will sort it (StageOptions), at the line that sets it."""
    problems: list[str] = []
    for index, stage in enumerate(spec.stages):
        for key, value in spec.options_of(stage).items():
            path = ("stages", index, "options", key) if key in stage.options else ("options", key)
            if key in SET_BY_SPEC:
                problems.append(f"{_where(source, lines, path)}: set '{key}' with the spec's '{SET_BY_SPEC[key]}'")
                continue
            try:
                StageOptions.sort({key: value}, compact=spec.compact_of(stage), who=f"stage '{stage.id}'")
            except TypeError as exc:
                problems.append(f"{_where(source, lines, path)}: {exc}")
    return problems


def _strings(value: Any, path: tuple):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, path + (index,))
