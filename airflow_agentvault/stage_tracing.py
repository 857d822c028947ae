"""
Each stage step's ``invoke_agent`` span, opened around an operator method or a trigger's run.

Why a decorator: the operators and triggers stay as they are; the span is current while their work runs,
so the protocol core's events (:mod:`protocol.tracing`) and the requests' ``traceparent`` land under it,
and Airflow's task or trigger span is its parent when Airflow traces. A deferral, a sensor's reschedule
or a wait for a person ends the span as an event, not an error: the stage goes on in another span.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import airflow.sdk.exceptions

from airflow_agentvault.compat import AirflowRescheduleException, TaskDeferred
from airflow_agentvault.protocol import tracing

F = TypeVar("F", bound=Callable[..., Any])

#: Exceptions that pause a stage rather than end it.
PAUSES: tuple[type[BaseException], ...] = tuple(
    e for e in (TaskDeferred, AirflowRescheduleException, getattr(airflow.sdk.exceptions, "TaskAwaitingInput", None))
    if isinstance(e, type)
)


def traced(step: str, *, conversation: Callable[[Any, Any], str | None] | None = None) -> Callable[[F], F]:
    """
    Run an operator method (``execute``, ``execute_complete``, ...) inside the step's span.

    ``conversation(operator, context)``: the A2A context id the step sends in, for ``gen_ai.conversation.id``.
    The span is named after the agent once the step has resolved it (inside the span, so a card that
    cannot be read fails the span too).
    """

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def run(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            conversation_id = conversation(self, context) if conversation is not None else None
            with tracing.invoke_agent(step=step, conversation_id=conversation_id, benign=PAUSES):
                try:
                    return method(self, context, *args, **kwargs)
                finally:  # a step that talked to no agent (a round nobody needed) reads no card for it
                    agent = self.hook.resolved_agent
                    if agent is not None:
                        tracing.identify(agent)

        return run  # type: ignore[return-value]

    return wrap


def traced_trigger(step: str) -> Callable[[F], F]:
    """
    Run a trigger's ``run`` inside the step's span, handing each event to Airflow as soon as it is made.

    The span is current only while the trigger works (each step of its generator), not while Airflow
    handles an event: what Airflow does then is no part of the step. A generator closed after its event
    (the task it was for has moved on) ends the span as an event, not an error.
    """

    def wrap(run: F) -> F:
        @functools.wraps(run)
        def traced_run(self: Any) -> AsyncIterator[Any]:
            if not tracing.spans_recorded():  # no span, nor a generator around the run, through a wait of hours
                return run(self)
            return _in_span(step, run(self))

        return traced_run  # type: ignore[return-value]

    return wrap


async def _in_span(step: str, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    with tracing.agent_span(step=step, benign=(GeneratorExit,)) as span:
        try:
            while True:
                with tracing.current(span):
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        return
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]
