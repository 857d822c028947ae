"""
The task's outcome, decided once from ``tasks/get`` (the source of truth) through one table.

COMPLETED becomes an XCom-sized result dict; FAILED, CANCELED, REJECTED, INPUT_REQUIRED and
AUTH_REQUIRED become the matching typed error carrying the agent's own words. The sync operator, the
triggers' ``execute_complete`` and the compact stage all go through :func:`outcome_of`.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.models import Message, Task, TaskState, TextPart, is_token_stream, reply_fragments
from airflow_agentvault.protocol.questions import question_of

#: State -> (error class, what to tell the user). COMPLETED (absent here) is the one success.
OUTCOME_ERRORS: dict[TaskState, tuple[type[errors.TaskOutcomeError], str]] = {
    TaskState.FAILED: (errors.TaskFailedError, "agent failed the task"),
    TaskState.REJECTED: (errors.TaskFailedError, "agent rejected the task"),
    TaskState.CANCELED: (errors.TaskCanceledError, "task was canceled"),
    TaskState.INPUT_REQUIRED: (errors.InputRequiredError, "agent needs input to continue; it asks"),
    TaskState.AUTH_REQUIRED: (errors.AuthRequiredError, "agent needs authentication to continue"),
}

DEFAULT_MAX_RESULT_BYTES = 512 * 1024


def agent_words(task: Task, status_message: str | None = None) -> str | None:
    """The agent's reason: the status event's message, the last agent message, then task metadata."""
    if status_message:
        return status_message
    text = task.last_agent_text()
    if text:
        return text
    for key in ("error", "reason", "message"):
        value = (task.metadata or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None


def outcome_of(
    task: Task,
    *,
    agent_url: str,
    metadata: dict[str, Any] | None = None,
    status_message: str | None = None,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    truncate: bool = False,
    asking: bool = False,
) -> dict[str, Any]:
    """
    Return the result of a COMPLETED task, or raise the typed error its state stands for.

    ``asking``: a task waiting for a person's answer is a result too, with its ``question``, for the
    step that asks the person.
    """
    question = question_of(task) if asking else None
    if question is not None:
        result = build_result(task, agent_url=agent_url, metadata=metadata)
        result["question"] = question.to_dict()
        return fit_result(result, max_result_bytes=max_result_bytes, truncate=truncate)
    if task.state in OUTCOME_ERRORS:
        cls, what = OUTCOME_ERRORS[task.state]
        words = agent_words(task, status_message)
        detail = f"{what}: {words}" if words else what
        raise cls(detail, agent_message=words, agent_url=agent_url, method="tasks/get", task_id=task.id)
    if task.state is not TaskState.COMPLETED:
        raise errors.ProtocolViolationError(
            f"task is not finished (state {task.state.value})", agent_url=agent_url, method="tasks/get", task_id=task.id
        )
    result = build_result(task, agent_url=agent_url, metadata=metadata)
    return fit_result(result, max_result_bytes=max_result_bytes, truncate=truncate)


def build_result(task: Task, *, agent_url: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Final state, agent text, the agent's messages and artifacts (one per id, the latest wins), plus metadata.

    The request is not echoed back: the caller has it already, and in a pipeline it carries the
    previous stage's result, so echoing it would nest every earlier result inside each later one.
    """
    artifacts: dict[str, Any] = {}
    for artifact in task.artifacts:
        artifacts[artifact.id] = artifact.to_wire()
    return {
        "task_id": task.id,
        "state": task.state.value,
        "text": task.answer_text() or "",
        "messages": agent_messages(task),
        "artifacts": list(artifacts.values()),
        "metadata": {"agent_url": errors.redact_url(agent_url), **(metadata or {}),
                     **({"usage": usage} if (usage := task.usage()) else {})},
    }


def agent_messages(task: Task) -> list[dict[str, Any]]:
    """The agent's messages as the result keeps them: a token-by-token answer becomes one message."""
    replies = reply_fragments(task.messages)
    if not is_token_stream(replies):
        return [m.to_wire() for m in task.messages if m.role != "user"]
    first = next(i for i, m in enumerate(task.messages) if m is replies[0])
    before = [m for m in task.messages[:first] if m.role != "user"]
    answer = Message(role=replies[-1].role, parts=[TextPart(content=task.answer_text() or "")],
                     metadata={"joined_messages": len(replies)})
    return [m.to_wire() for m in before] + [answer.to_wire()]


def result_size(result: dict[str, Any]) -> int:
    return len(json.dumps(result, separators=(",", ":"), default=str).encode())


def fit_result(result: dict[str, Any], *, max_result_bytes: int, truncate: bool) -> dict[str, Any]:
    """Enforce the XCom size limit: a clear error, or (``truncate``) drop bulky content with a note."""
    size = result_size(result)
    if size <= max_result_bytes:
        return result
    where = {"agent_url": result["metadata"].get("agent_url"), "method": "tasks/get", "task_id": result["task_id"]}
    if not truncate:
        raise errors.ResultTooLargeError(
            f"result is {size} bytes, above the limit of {max_result_bytes} bytes; raise max_result_bytes "
            "or set truncate_result=True",
            **where,
        )
    slim = dict(result)
    slim["messages"] = [m for m in result["messages"] if m.get("role") != "user"][-1:]
    slim["artifacts"] = [
        {k: v for k, v in a.items() if k != "content"} | {"content_truncated": True} for a in result["artifacts"]
    ]
    slim["text"] = result["text"][: max_result_bytes // 4]
    slim["metadata"] = dict(result["metadata"], truncated=True, original_bytes=size)
    if result_size(slim) > max_result_bytes:
        raise errors.ResultTooLargeError(
            f"result is {size} bytes and still too large after truncation (limit {max_result_bytes})", **where
        )
    return slim
