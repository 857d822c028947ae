"""
One call per pipeline stage: initiate >> wait_until_visible >> stream for one agent, or the compact form.

A stage's input is templated (``text``) and/or structured (``data``, which may hold earlier stages'
``output``: Airflow resolves those XCom references at run time and wires the dependencies, and results
stored by reference are loaded transparently). Timing comes from the DAG params unless the stage
overrides some knobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseOperator, TaskGroup

from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.params import timing_from_params
from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor


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
    :param deferrable: wait in the triggerer (split form); default ``[operators] default_deferrable``.
    :param result_kwargs: ``max_result_bytes``, ``truncate_result``, ``result_storage``, ``cancel_on_kill``.
    """
    timing = {**(timing if timing is not None else timing_from_params()), **(timing_overrides or {})}
    message = {"agentvault_conn_id": agentvault_conn_id, "text": text, "data": data,
               "message_metadata": message_metadata}
    if compact:
        op = AgentVaultStageOperator(task_id=stage_id, timing=timing, **message, **result_kwargs)
        return AgentStage(stage_id, op, op.output)
    with TaskGroup(group_id=stage_id, tooltip=f"agent stage {stage_id}") as group:
        initiate = AgentVaultInitiateOperator(task_id="initiate", **message)
        visible = AgentVaultTaskExistsSensor(
            task_id="wait_until_visible", agentvault_conn_id=agentvault_conn_id, agent_task_id=initiate.output,
            timing=timing, deferrable=deferrable,
        )
        stream = AgentVaultStreamOperator(
            task_id="stream", agentvault_conn_id=agentvault_conn_id, agent_task_id=initiate.output,
            timing=timing, deferrable=deferrable, **result_kwargs,
        )
        initiate >> visible >> stream
    return AgentStage(stage_id, group, stream.output)
