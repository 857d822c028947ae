"""What the operators and the sensor share: their inputs checked, names, and cancelling on kill."""

from __future__ import annotations

import json
import re
from typing import Any

from airflow_agentvault import result_storage
from airflow_agentvault.compat import AirflowFailException, conf
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.models import DataPart, Message, TextPart


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, as the official providers read it."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def build_message(text: str | None, data: Any, metadata: dict[str, Any] | None = None) -> Message:
    """The user message from text and/or a JSON-serialisable dict; bad input fails before any request."""
    parts: list[Any] = []
    if text is not None and not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    if text and text.strip():
        parts.append(TextPart(content=text))
    if data is not None:
        if not isinstance(data, dict):
            raise ValueError(f"'data' must be a dict, got {type(data).__name__}")
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'data' is not JSON-serialisable: {exc}") from None
        if data:
            parts.append(DataPart(content=data))
    if not parts:
        raise ValueError("the message is empty: give 'text' and/or a non-empty 'data' dict")
    return Message(role="user", parts=parts, metadata=metadata or None)


def rendered_message(task_id: str, text: str | None, data: Any, metadata: dict[str, Any] | None) -> Message:
    """The rendered message with stored results swapped in; bad input fails the task before any request."""
    try:
        return build_message(text, result_storage.resolve_references(data), metadata)
    except ValueError as exc:
        raise AirflowFailException(f"{task_id}: {exc}") from None


def require_task_id(value: Any) -> str:
    """The agent task id must be a non-empty string; anything else is a wiring mistake in the DAG."""
    if not isinstance(value, str) or not value.strip() or value.strip() == "None":
        raise AirflowFailException(
            f"agent_task_id must be the agent's task id (usually the initiate task's output), got {value!r}"
        )
    return value.strip()


def result_name(context: Any, task_id: str) -> str:
    """A file name unique to this task instance, safe on any object store."""
    ti = context.get("ti")
    run_id = getattr(context.get("dag_run"), "run_id", None) or getattr(ti, "run_id", "run")
    dag_id = getattr(ti, "dag_id", "dag")
    map_index = getattr(ti, "map_index", -1)
    suffix = f"_{map_index}" if isinstance(map_index, int) and map_index >= 0 else ""
    return "/".join(re.sub(r"[^A-Za-z0-9._-]", "_", str(part)) for part in (dag_id, run_id, f"{task_id}{suffix}"))


def cancel_remote(client: Any, task_id: str | None, log: Any) -> None:
    """``on_kill``: ask the agent to cancel the task being followed; a failure is logged, never raised."""
    if not task_id:
        return
    try:
        answer = client.cancel(task_id)
        log.info("Asked the agent to cancel task %s: success=%s", task_id, answer.success)
    except errors.AgentVaultError as exc:
        log.warning("Could not cancel task %s: %s", task_id, exc)
