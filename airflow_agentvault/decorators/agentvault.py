"""
``@task.agentvault``: a function returns the message, the agent's answer is the task's result.

The function runs on the worker with the task's context, like any TaskFlow task; what it returns is
sent to the agent (a string as text, a dict as data, or both as ``{"text": ..., "data": ...}``), and
the task then does what the compact stage does (start or reconnect, wait until visible, follow, deliver),
deferrable if asked. Arguments are :class:`~airflow_agentvault.operators.stage.AgentVaultStageOperator`'s.

With ``compact=False`` the stage is split as :func:`~airflow_agentvault.pipelines.stage.agent_stage`
splits it: the decorated task sends the message and returns the agent's task id, then
``<task>_wait_until_visible`` and ``<task>_stream`` follow it; calling the function returns the stream
step's result.

.. code-block:: python

    @task.agentvault(agentvault_conn_id="research_agent", deferrable=True)
    def research(topic: str) -> str:
        return f"Research this topic: {topic}"
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import (
    DecoratedOperator,
    TaskDecorator,
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from airflow_agentvault.compat import AirflowFailException
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor

#: Arguments of the steps that follow the task (split form); the rest go to every step or the send.
FOLLOW_ONLY = frozenset({"timing", "deferrable", "cancel_on_kill", "max_result_bytes", "truncate_result",
                         "result_storage"})
#: Arguments of the send alone (split form).
SEND_ONLY = frozenset({"durable", "resend_if_unsure", "message_metadata", "multiple_outputs"})


def message_parts(returned: Any) -> tuple[str | None, dict[str, Any] | None]:
    """What the decorated function returned, as (text, data); anything else is a mistake in the DAG."""
    if isinstance(returned, str):
        return returned, None
    if isinstance(returned, dict) and returned and set(returned) <= {"text", "data"} and (
            isinstance(returned.get("text"), str | None) and isinstance(returned.get("data"), dict | None)):
        return returned.get("text"), returned.get("data")
    if isinstance(returned, dict):
        return None, returned
    raise AirflowFailException(
        f"@task.agentvault: the function must return the message: a string (text), a dict (data) or "
        f"{{'text': ..., 'data': ...}}; it returned {type(returned).__name__}"
    )


class _MessageFromFunction(DecoratedOperator):
    """Runs the decorated function for the message; the step it is mixed into then sends it."""

    template_fields_renderers: ClassVar[dict[str, str]] = {**DecoratedOperator.template_fields_renderers}
    custom_operator_name = "@task.agentvault"

    def __init__(self, *, python_callable: Callable, op_args: Collection[Any] | None = None,
                 op_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)

    def take_message(self, context: Any) -> None:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        self.text, self.data = message_parts(self.python_callable(*self.op_args, **kwargs))


class _AgentVaultDecoratedOperator(_MessageFromFunction, AgentVaultStageOperator):
    """Runs the function for the message, then the stage."""

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, "timing")

    def execute(self, context: Any) -> Any:
        self.take_message(context)
        return AgentVaultStageOperator.execute(self, context)


class _AgentVaultInitiateDecoratedOperator(_MessageFromFunction, AgentVaultInitiateOperator):
    """Runs the function for the message, then sends it (the split form's first step)."""

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, "message_metadata")

    def execute(self, context: Any) -> Any:
        self.take_message(context)
        return AgentVaultInitiateOperator.execute(self, context)


class SplitStageDecorator:
    """``@task.agentvault(compact=False)``: send, then wait until visible and stream, as three tasks."""

    def __init__(self, send: TaskDecorator, kwargs: dict[str, Any]) -> None:
        self.send = send
        self.kwargs = kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        agent_task_id = self.send(*args, **kwargs)
        name = agent_task_id.operator.task_id.rsplit(".", 1)[-1]
        shared = {k: v for k, v in self.kwargs.items() if k not in SEND_ONLY}
        sensor_kwargs = {k: v for k, v in shared.items() if k in ("timing", "deferrable") or k not in FOLLOW_ONLY}
        visible = AgentVaultTaskExistsSensor(task_id=f"{name}_wait_until_visible", agent_task_id=agent_task_id,
                                             **sensor_kwargs)
        stream = AgentVaultStreamOperator(task_id=f"{name}_stream", agent_task_id=agent_task_id, **shared)
        visible >> stream
        return stream.output

    def override(self, **kwargs: Any) -> SplitStageDecorator:
        return SplitStageDecorator(self.send.override(**kwargs), {**self.kwargs, **kwargs})


def agentvault_task(python_callable: Callable | None = None, *, compact: bool = True,
                    **kwargs: Any) -> Any:
    """Wrap a function that returns a message into an agent stage (``@task.agentvault``)."""
    if compact:
        return task_decorator_factory(python_callable=python_callable,
                                      decorated_operator_class=_AgentVaultDecoratedOperator, **kwargs)
    send_kwargs = {k: v for k, v in kwargs.items() if k not in FOLLOW_ONLY}

    def split(function: Callable) -> SplitStageDecorator:
        send = task_decorator_factory(python_callable=function,
                                      decorated_operator_class=_AgentVaultInitiateDecoratedOperator, **send_kwargs)
        return SplitStageDecorator(send, kwargs)

    return split(python_callable) if python_callable is not None else split
