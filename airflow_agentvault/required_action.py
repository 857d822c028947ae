"""
What a person reads under Required Actions when an agent asks: the question, what the agent has said
and made so far, in Markdown (Airflow renders the body), never raw JSON.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_agentvault.protocol.models import Artifact, Task
from airflow_agentvault.protocol.questions import AUTH, Question

SUBJECT_CHARS = 120
PREVIEW_CHARS = 400
RECENT_MESSAGES = 5


def required_action_subject(question: Question, agent: str) -> str:
    """The headline: who asks, and the question itself (shortened)."""
    text = " ".join(question.text.split())
    if len(text) > SUBJECT_CHARS:
        text = text[: SUBJECT_CHARS - 1] + "…"
    return f"{agent} asks: {text}"


def required_action_body(question: Question, task: Task, *, round_number: int, max_rounds: int) -> str:
    """The details: the question, how to answer, the agent's last messages and its artifacts so far."""
    lines = [f"**The agent asks** (task `{task.id}`, question {round_number} of at most {max_rounds}):", "",
             *quoted(question.text), ""]
    if question.kind == AUTH:
        lines += ["Name the Airflow connection (its password is sent) or `variable:NAME` that holds the credential. "
                  "Never type the secret itself.", ""]
    elif question.options:
        lines += ["Choose one of the agent's options, or reject to cancel the agent's task.", ""]
    else:
        lines += ["Type your answer below, or reject to cancel the agent's task.", ""]
    said = [m.text for m in task.messages if m.role != "user" and m.text and m.text != question.text]
    if said:
        lines += ["**What the agent said before asking**", ""]
        lines += [f"- {preview(text)}" for text in said[-RECENT_MESSAGES:]]
        lines.append("")
    if task.artifacts:
        lines += ["**Artifacts so far**", ""]
        lines += [f"- {artifact_line(a)}" for a in task.artifacts]
    return "\n".join(lines).strip()


def quoted(text: str) -> list[str]:
    return [f"> {line}" if line else ">" for line in text.splitlines() or [text]]


def preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def artifact_line(artifact: Artifact) -> str:
    name = (artifact.metadata or {}).get("name") or artifact.id
    content: Any = artifact.content
    if content is None:
        return f"`{name}`: {artifact.url or 'no inline content'}"
    shown = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return f"`{name}` ({artifact.type}): {preview(shown)}"
