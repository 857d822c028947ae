"""The readable one-line account of each event, as the task log shows it."""

from __future__ import annotations

from airflow_agentvault.protocol.models import Message, TaskEvent, TaskMessageEvent, TaskStatusEvent


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


def _parts_summary(message: Message) -> str:
    return ", ".join(p.type for p in message.parts)


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
