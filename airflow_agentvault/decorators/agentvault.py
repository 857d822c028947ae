"""
``@task.agentvault``: a function returns the message, the agent's answer is the task's result.

The function runs on the worker with the task's context, like any TaskFlow task; what it returns is
sent to the agent (a string as text, a dict as data, or both as ``{"text": ..., "data": ...}``), and
the task then does what the compact stage does (start or reconnect, wait until visible, follow, deliver),
deferrable if asked. Arguments are :class:`~airflow_agentvault.operators.stage.AgentVaultStageOperator`'s.

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
from airflow_agentvault.operators.stage import AgentVaultStageOperator


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


class _AgentVaultDecoratedOperator(DecoratedOperator, AgentVaultStageOperator):
    """Runs the function for the message, then the stage."""

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, "timing")
    template_fields_renderers: ClassVar[dict[str, str]] = {**DecoratedOperator.template_fields_renderers}
    custom_operator_name = "@task.agentvault"

    def __init__(self, *, python_callable: Callable, op_args: Collection[Any] | None = None,
                 op_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)

    def execute(self, context: Any) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        self.text, self.data = message_parts(self.python_callable(*self.op_args, **kwargs))
        return AgentVaultStageOperator.execute(self, context)


def agentvault_task(python_callable: Callable | None = None, **kwargs: Any) -> TaskDecorator:
    """Wrap a function that returns a message into an agent stage (``@task.agentvault``)."""
    return task_decorator_factory(python_callable=python_callable,
                                  decorated_operator_class=_AgentVaultDecoratedOperator, **kwargs)
