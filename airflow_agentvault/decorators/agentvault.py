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
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from airflow_agentvault.compat import AirflowFailException
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator
from airflow_agentvault.operators.options import StageOptions
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.pipelines.stage import wait_and_follow


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
    """Runs the function for the message, then the stage (on a worker: the function must run there)."""

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, "timing")
    message_from_worker = True

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

    def __init__(self, function: Callable, options: dict[str, Any], named: dict[str, Any] | None = None) -> None:
        self.function, self.options, self.named = function, options, named or {}
        self.steps = StageOptions.sort(options, who="@task.agentvault(compact=False)")
        # the send step's output is the agent's task id, whatever the function's annotation says
        self.send = task_decorator_factory(python_callable=function, multiple_outputs=False,
                                           decorated_operator_class=_AgentVaultInitiateDecoratedOperator,
                                           **self.steps.send, **self.named)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        agent_task_id = self.send(*args, **kwargs)
        name = agent_task_id.operator.task_id.rsplit(".", 1)[-1]
        return wait_and_follow(agent_task_id, self.steps, prefix=f"{name}_").output

    def override(self, **kwargs: Any) -> SplitStageDecorator:
        """``task_id`` renames the send step (and so the others); other options are sorted as at first."""
        named = {**self.named, **{k: kwargs.pop(k) for k in ("task_id",) if k in kwargs}}
        return SplitStageDecorator(self.function, {**self.options, **kwargs}, named)


def agentvault_task(python_callable: Callable | None = None, *, compact: bool = True,
                    **kwargs: Any) -> Any:
    """Wrap a function that returns a message into an agent stage (``@task.agentvault``)."""
    if compact:
        StageOptions.sort(kwargs, compact=True, who="@task.agentvault")  # an unknown keyword is named here
        return task_decorator_factory(python_callable=python_callable,
                                      decorated_operator_class=_AgentVaultDecoratedOperator, **kwargs)
    if python_callable is not None:
        return SplitStageDecorator(python_callable, kwargs)
    return lambda function: SplitStageDecorator(function, kwargs)
