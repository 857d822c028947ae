"""The reference agent's wire shapes: task states, messages, ids, timestamps, and credential redaction.

Why it exists: the task store (:mod:`.tasks`) writes these shapes, byte-compatible with
``agentvault-server-sdk``; kept apart, the store holds only the life cycle.
"""

from __future__ import annotations

import copy
import secrets
from datetime import datetime, timezone
from typing import Any

from agentvault_stack.agent.behaviour import OVERRIDE_KEY, Question
from agentvault_stack.agent.contract import CREDENTIAL_KEY

SUBMITTED = "SUBMITTED"
WORKING = "WORKING"
INPUT_REQUIRED = "INPUT_REQUIRED"
AUTH_REQUIRED = "AUTH_REQUIRED"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELED = "CANCELED"

TERMINAL_STATES = frozenset({COMPLETED, FAILED, CANCELED})
#: States after which a stream has nothing more to say until the client acts.
STREAM_END_STATES = TERMINAL_STATES | {INPUT_REQUIRED, AUTH_REQUIRED}

FAILURE_REASON = "reference agent failed on purpose"
CREDENTIAL_REJECTED = "credential rejected: the follow-up did not carry the credential this agent expects"
REDACTED = "[redacted]"
PROGRESS_TEXT = "half way"

UTC = timezone.utc  # datetime.UTC is Python 3.11+


def now_iso() -> str:
    """UTC timestamp with microseconds and a ``Z``, as the SDK writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_task_id() -> str:
    """Task ids shaped like the SDK examples' (``slow-a4beec8c``)."""
    return f"ref-{secrets.token_hex(4)}"


def assistant_message(text: str) -> dict[str, Any]:
    """An assistant message with one text part, in wire form."""
    return {"role": "assistant", "parts": [{"type": "text", "content": text}], "metadata": None}


def question_message(question: Question) -> dict[str, Any]:
    """The question as an assistant message: its text, and its options as a data part if it has any."""
    message = assistant_message(question.text)
    if question.options:
        message["parts"].append({"type": "data", "content": {"options": list(question.options)},
                                 "mediaType": "application/json"})
    return message


def credential_of(message: dict[str, Any]) -> str | None:
    """The ``credential`` of a follow-up's data part, if it sends one as a string."""
    for part in message.get("parts", []):
        content = part.get("content") if part.get("type") == "data" else None
        if isinstance(content, dict) and isinstance(content.get(CREDENTIAL_KEY), str):
            return str(content[CREDENTIAL_KEY])
    return None


def answer_of(message: dict[str, Any]) -> str:
    """A follow-up's answer: its data part's ``answer``, else its text parts joined."""
    texts = []
    for part in message.get("parts", []):
        content = part.get("content")
        if part.get("type") == "data" and isinstance(content, dict) and isinstance(content.get("answer"), str):
            return str(content["answer"])
        if part.get("type") == "text":
            texts.append(str(content))
    return " ".join(texts)


def redacted(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as stored: credential values (sent, or expected per task) replaced by ``[redacted]``."""
    stored = copy.deepcopy(message)
    for part in stored.get("parts", []):
        if part.get("type") == "data" and isinstance(part.get("content"), dict) and CREDENTIAL_KEY in part["content"]:
            part["content"][CREDENTIAL_KEY] = REDACTED
    overrides = (stored.get("metadata") or {}).get(OVERRIDE_KEY)
    if isinstance(overrides, dict) and overrides.get("require_credential") is not None:
        overrides["require_credential"] = REDACTED
    return stored
