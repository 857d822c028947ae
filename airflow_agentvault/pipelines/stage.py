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
from airflow_agentvault.operators.options import StageOptions
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
    **options: Any,
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
        A deferrable compact stage is worker-free where Airflow allows (``worker_free``, Airflow 3.3+:
        it starts and ends in the triggerer); pass ``worker_free=False`` to start it on a worker.
    :param ask_person: when the agent asks a question (INPUT_REQUIRED, AUTH_REQUIRED), a person answers it
        under Airflow's Required Actions and the task goes on, instead of the stage failing; each round is
        an ``ask_person_<n>`` task after the follow step that passes a final result straight on.
    :param max_rounds: how many rounds of questions the stage answers (with ``ask_person``).
    :param response_timeout: how long a person may take to answer; then the remote task is canceled.
    :param options: any other keyword of the stage's operators, given to the steps that take it
        (:class:`~airflow_agentvault.operators.options.StageOptions`): ``max_result_bytes``,
        ``truncate_result``, ``result_storage``, ``cancel_on_kill`` (follow), ``durable``,
        ``resend_if_unsure`` (send), ``mode`` (wait), ``retries``, ``pool`` (every step).
    """
    if ask_person and max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1 when the stage asks a person, got {max_rounds}")
    timing = {**(timing if timing is not None else timing_from_params()), **(timing_overrides or {})}
    if compact and "worker_free" not in options:
        options["worker_free"] = None  # worker-free where it applies: the stage decides, quietly
    steps = StageOptions.sort(
        {"agentvault_conn_id": agentvault_conn_id, "text": text, "data": data, "message_metadata": message_metadata,
         "timing": timing, "deferrable": deferrable, **({"ask_person": True} if ask_person else {}), **options},
        compact=compact, who=f"agent_stage({stage_id!r})")
    if compact and not ask_person:
        op = AgentVaultStageOperator(task_id=stage_id, **steps.compact)
        return AgentStage(stage_id, op, op.output)
    with TaskGroup(group_id=stage_id, tooltip=f"agent stage {stage_id}") as group:
        if compact:
            last: BaseOperator = AgentVaultStageOperator(task_id="run", **steps.compact)
        else:
            last = wait_and_follow(AgentVaultInitiateOperator(task_id="initiate", **steps.send).output, steps)
        for round_number in range(1, max_rounds + 1) if ask_person else ():
            answer = AgentVaultAskPersonOperator(
                task_id=f"ask_person_{round_number}", previous=last.output, round_number=round_number,
                max_rounds=max_rounds, response_timeout=response_timeout, **steps.follow,
            )
            last >> answer
            last = answer
    return AgentStage(stage_id, group, last.output)


def wait_and_follow(agent_task_id: Any, steps: StageOptions, prefix: str = "") -> BaseOperator:
    """``wait_until_visible >> stream`` after the send step whose output is ``agent_task_id``; the stream step."""
    visible = AgentVaultTaskExistsSensor(task_id=f"{prefix}wait_until_visible", agent_task_id=agent_task_id,
                                         **steps.wait)
    stream = AgentVaultStreamOperator(task_id=f"{prefix}stream", agent_task_id=agent_task_id, **steps.follow)
    visible >> stream
    return stream
