"""
Decoding of AgentVault SSE events, shared by the sync (sseclient-py) and async (httpx-sse) clients.

AgentVault names its events (``task_status``, ``task_message``, ``task_artifact``, ``error``) and ends
the stream by closing it after the terminal status; an unknown event name or bad JSON is a protocol
violation, and an ``error`` event is raised as the typed error it carries.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.jsonrpc import error_from_object
from airflow_agentvault.protocol.models import (
    TaskArtifactEvent,
    TaskEvent,
    TaskMessageEvent,
    TaskStatusEvent,
    parse_model,
)

EVENT_TYPES: dict[str, type] = {
    "task_status": TaskStatusEvent,
    "task_message": TaskMessageEvent,
    "task_artifact": TaskArtifactEvent,
}


def decode_event(event: str | None, data: str, **where: Any) -> TaskEvent:
    """One SSE event (name and data) -> a typed event, or raise the error it stands for."""
    name = event or "message"
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise errors.ProtocolViolationError(f"SSE event '{name}' carries malformed JSON ({exc})", **where) from None
    if name == "error":
        if isinstance(payload, dict) and "error" in payload and not isinstance(payload["error"], dict):
            payload = {"code": payload.get("error"), "message": payload.get("message")}
        elif isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            payload = payload["error"]
        raise error_from_object(payload, **where)
    model = EVENT_TYPES.get(name)
    if model is None:
        raise errors.ProtocolViolationError(f"unknown SSE event type '{name}'", **where)
    return parse_model(model, payload, **where)


def describe_event(event: TaskEvent) -> str:
    """A readable one-line account of an event for the task log."""
    if isinstance(event, TaskStatusEvent):
        text = f": {event.message_text}" if event.message_text else ""
        return f"state -> {event.state.value}{text}"
    if isinstance(event, TaskMessageEvent):
        return f"{event.message.role} says: {_clip(event.message.text or _parts_summary(event.message))}"
    artifact = event.artifact
    kind = artifact.media_type or artifact.type
    where = f" at {artifact.url}" if artifact.url else ""
    return f"artifact '{artifact.id}' ({kind}, {artifact.size} bytes){where}"


def _parts_summary(message) -> str:
    return ", ".join(p.type for p in message.parts)


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
