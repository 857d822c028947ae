"""
Whether a compact stage can start and end in the triggerer, decided when the DAG is parsed.

Airflow decides at parse time, per task, whether the scheduler starts it in the triggerer: the trigger's
kwargs are fixed then (only the operator's template fields are rendered in the triggerer, with a plain
Jinja environment). So :func:`start_args` checks each case Airflow cannot serve from the triggerer and,
if one applies, returns the reason instead: the stage then defers as before (docs/worker-free.md lists
them). A plain ``XComArg`` of an unmapped upstream (``data={"previous": upstream.output}``) is replaced
by a placeholder that the trigger reads with ``GetXCom``; the operator keeps the ``XComArg``, so the
dependency and the worker path stay as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import XComArg

from airflow_agentvault.compat import WORKER_FREE_STAGES, PlainXComArg, StartTriggerArgs
from airflow_agentvault.protocol.timing import Timing

TRIGGER = "airflow_agentvault.triggers.stage.AgentVaultStageTrigger"
#: The operator method a worker resumes with (a fallback, a failure, a result to store).
RESUME = "resume_from_triggerer"
#: The placeholder of an upstream XCom that the trigger reads.
XCOM_INPUT = "__agentvault_xcom__"
DEFAULT_POOL = "default_pool"


class NotPortable(Exception):
    """A value the trigger cannot receive as it is; the message says why."""


def start_args(op: Any) -> tuple[Any, str | None]:
    """``(StartTriggerArgs, None)`` for a stage that can start in the triggerer, else ``(None, why not)``."""
    why = _task_reason(op)
    if why is not None:
        return None, why
    try:
        fields = {name: portable(getattr(op, name)) for name in ("text", "data", "message_metadata")}
        fields["timing"] = portable(op.timing.model_dump() if isinstance(op.timing, Timing) else op.timing)
    except NotPortable as exc:
        return None, str(exc)
    if _jinja_differs(op, fields):
        return None, ("the DAG renders templates natively or with its own macros, filters or search path, "
                      "which the triggerer does not")
    kwargs = {"conn_id": op.agentvault_conn_id, **fields, "cancel_on_kill": op.cancel_on_kill,
              "resend_if_unsure": op.resend_if_unsure, "max_result_bytes": op.max_result_bytes,
              "truncate_result": op.truncate_result, "result_storage": op.result_storage, "ask_person": op.ask_person,
              "push": op.push}
    return StartTriggerArgs(trigger_cls=TRIGGER, next_method=RESUME, trigger_kwargs=kwargs), None


def _task_reason(op: Any) -> str | None:
    if not WORKER_FREE_STAGES:
        return "this Airflow cannot start a task in the triggerer (3.3+)"
    if not op.deferrable:
        return "deferrable=False"
    if op.message_from_worker:
        return "the message comes from a Python function, which runs on a worker"
    if op.get_closest_mapped_task_group() is not None:
        return "it is in a mapped task group (Airflow starts only unmapped tasks in the triggerer)"
    if op.outlets:
        return "it has outlets (asset events are emitted only by a worker)"
    if op.on_success_callback or op.on_execute_callback:
        return "it has an on_success or on_execute callback (Airflow runs neither for a task the triggerer ends)"
    if not op.do_xcom_push or getattr(op, "multiple_outputs", False):
        return "do_xcom_push=False or multiple_outputs shapes the result's XCom, which a worker pushes"
    if op.pool != DEFAULT_POOL or op.max_active_tis_per_dag or op.max_active_tis_per_dagrun:
        return "it has a pool or a concurrency limit (the triggerer's start bypasses both)"
    return None


def portable(value: Any) -> Any:
    """``value`` as the trigger receives it: JSON, with plain unmapped ``XComArg`` s as placeholders."""
    if isinstance(value, XComArg):
        operator, key = getattr(value, "operator", None), getattr(value, "key", None)
        if not isinstance(value, PlainXComArg) or operator is None or not isinstance(key, str):
            raise NotPortable(f"an input is a derived XComArg ({type(value).__name__}), resolved only on a worker")
        if operator.is_mapped or operator.get_closest_mapped_task_group() is not None:
            raise NotPortable(f"an input is the output of the mapped task {operator.task_id!r}")
        return {XCOM_INPUT: {"task_id": operator.task_id, "key": key}}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise NotPortable("an input dict has keys that are not strings")
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if isinstance(value, str) and "xcom_pull" in value:
        raise NotPortable("a template calls xcom_pull, which the triggerer cannot serve for every form")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise NotPortable(f"an input is a {type(value).__name__}, which only a worker renders")


def _jinja_differs(op: Any, fields: Mapping[str, Any]) -> bool:
    """The triggerer renders with a plain environment: a DAG that changes rendering and uses Jinja must not."""
    dag = getattr(op, "dag", None) if getattr(op, "has_dag", lambda: False)() else None
    if dag is None:
        return False
    custom = (dag.render_template_as_native_obj or dag.user_defined_macros or dag.user_defined_filters
              or dag.template_searchpath)
    text = repr(fields)
    return bool(custom) and ("{{" in text or "{%" in text)
