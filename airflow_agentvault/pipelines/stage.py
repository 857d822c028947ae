"""
One call per pipeline stage: initiate >> wait_until_visible >> stream for one agent, or the compact form.

A stage's input is templated (``text``) and/or structured (``data``, which may hold earlier stages'
``output``: Airflow resolves those XCom references at run time and wires the dependencies, and results
stored by reference are loaded transparently). Timing comes from the DAG params unless the stage
overrides some knobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, TaskGroup

from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator
from airflow_agentvault.operators.ask_person import AgentVaultAskPersonOperator
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.params import timing_from_params
from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor

#: Rounds of questions a stage answers unless told otherwise.
DEFAULT_MAX_ROUNDS = 2


@dataclass(frozen=True)
class AgentStage:
    """What :func:`agent_stage` built: the Airflow node (a TaskGroup or one task) and the stage's result."""

    stage_id: str
    node: TaskGroup | BaseOperator
    output: Any

    def __rshift__(self, other: Any) -> Any:
        return self.node >> _node(other)

    def __lshift__(self, other: Any) -> Any:
        return self.node << _node(other)


def _node(value: Any) -> Any:
    return value.node if isinstance(value, AgentStage) else value


def agent_stage(
    stage_id: str,
    *,
    agentvault_conn_id: str = AgentVaultHook.default_conn_name,
    text: str | None = None,
    data: dict[str, Any] | None = None,
    message_metadata: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
    timing_overrides: dict[str, Any] | None = None,
    compact: bool = False,
    deferrable: bool | None = None,
    ask_person: bool = False,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    response_timeout: timedelta | None = None,
    **result_kwargs: Any,
) -> AgentStage:
    """
    Build one agent stage; its result is ``stage.output`` (an XCom reference for later stages).

    :param stage_id: the TaskGroup id (split form) or task id (compact form).
    :param agentvault_conn_id: the agent's ``agentvault`` connection.
    :param text: message text (templated).
    :param data: message data (templated; may contain other stages' ``output``).
    :param timing: timing values or templates; default: every knob from the DAG params.
    :param timing_overrides: knobs to fix for this stage only, e.g. ``{"poll_interval": 5}``.
    :param compact: one task instead of three (same steps, same code).
    :param deferrable: wait in the triggerer (either form); default ``[operators] default_deferrable``.
    :param ask_person: when the agent asks a question (INPUT_REQUIRED, AUTH_REQUIRED), a person answers it
        under Airflow's Required Actions and the task goes on, instead of the stage failing; each round is
        an ``ask_person_<n>`` task after the follow step that passes a final result straight on.
    :param max_rounds: how many rounds of questions the stage answers (with ``ask_person``).
    :param response_timeout: how long a person may take to answer; then the remote task is canceled.
    :param result_kwargs: ``max_result_bytes``, ``truncate_result``, ``result_storage``, ``cancel_on_kill``.
    """
    timing = {**(timing if timing is not None else timing_from_params()), **(timing_overrides or {})}
    message = {"agentvault_conn_id": agentvault_conn_id, "text": text, "data": data,
               "message_metadata": message_metadata}
    asking = {"ask_person": True} if ask_person else {}
    if ask_person and max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1 when the stage asks a person, got {max_rounds}")
    if compact and not ask_person:
        op = AgentVaultStageOperator(task_id=stage_id, timing=timing, deferrable=deferrable, **message,
                                     **result_kwargs)
        return AgentStage(stage_id, op, op.output)
    with TaskGroup(group_id=stage_id, tooltip=f"agent stage {stage_id}") as group:
        if compact:
            last: BaseOperator = AgentVaultStageOperator(task_id="run", timing=timing, deferrable=deferrable,
                                                         **message, **asking, **result_kwargs)
        else:
            last = split_steps(message, timing, deferrable, asking, result_kwargs)
        for round_number in range(1, max_rounds + 1) if ask_person else ():
            answer = AgentVaultAskPersonOperator(
                task_id=f"ask_person_{round_number}", agentvault_conn_id=agentvault_conn_id, previous=last.output,
                round_number=round_number, max_rounds=max_rounds, response_timeout=response_timeout,
                timing=timing, deferrable=deferrable, **result_kwargs,
            )
            last >> answer
            last = answer
    return AgentStage(stage_id, group, last.output)


def split_steps(message: dict[str, Any], timing: dict[str, Any], deferrable: bool | None, asking: dict[str, Any],
                result_kwargs: dict[str, Any]) -> BaseOperator:
    """initiate >> wait_until_visible >> stream, inside the caller's TaskGroup; returns the stream step."""
    agentvault_conn_id = message["agentvault_conn_id"]
    initiate = AgentVaultInitiateOperator(task_id="initiate", **message)
    visible = AgentVaultTaskExistsSensor(
        task_id="wait_until_visible", agentvault_conn_id=agentvault_conn_id, agent_task_id=initiate.output,
        timing=timing, deferrable=deferrable,
    )
    stream = AgentVaultStreamOperator(
        task_id="stream", agentvault_conn_id=agentvault_conn_id, agent_task_id=initiate.output,
        timing=timing, deferrable=deferrable, **asking, **result_kwargs,
    )
    initiate >> visible >> stream
    return stream
