"""
An agent's question to a person, read from a task that stopped in INPUT_REQUIRED or AUTH_REQUIRED.

The agent asks in its status message: a text part holds the question and an optional data part
``{"options": [...]}`` the choices it offers. The answer goes back to the same task as a follow-up
message: the answer's text plus ``{"answer": ...}``, or for credentials ``{"credential": ...}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_agentvault.protocol.models import DataPart, Message, Task, TaskState, TextPart

INPUT = "input"
AUTH = "auth"

ASKING_STATES = {TaskState.INPUT_REQUIRED: INPUT, TaskState.AUTH_REQUIRED: AUTH}
DEFAULT_WORDS = {INPUT: "The agent needs input to continue.", AUTH: "The agent needs credentials to continue."}


@dataclass(frozen=True)
class Question:
    """What the agent asked: ``kind`` is ``input`` or ``auth``; ``options`` the choices it offered, if any."""

    kind: str
    text: str
    options: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "options": list(self.options)}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Question:
        return cls(str(value["kind"]), str(value["text"]), tuple(str(o) for o in value.get("options") or ()))


def question_of(task: Task) -> Question | None:
    """The question a task waits on, or None when it does not wait for anyone."""
    kind = ASKING_STATES.get(task.state)
    if kind is None:
        return None
    asking = next((m for m in reversed(task.messages) if m.role != "user"), None)
    text = (asking.text if asking else None) or DEFAULT_WORDS[kind]
    return Question(kind, text, offered_options(asking) if asking else ())


def offered_options(message: Message) -> tuple[str, ...]:
    """The choices of a message's ``{"options": [...]}`` data part (strings, in order, without repeats)."""
    options: list[str] = []
    for part in message.parts:
        values = part.content.get("options") if isinstance(part, DataPart) else None
        for value in values if isinstance(values, list) else ():
            if isinstance(value, (str, int, float)) and str(value) not in options:
                options.append(str(value))
    return tuple(options)


def answer_message(answer: str) -> Message:
    """The follow-up carrying a person's answer."""
    return Message(role="user", parts=[TextPart(content=answer), DataPart(content={"answer": answer})])


def credential_message(credential: str) -> Message:
    """The follow-up carrying a credential; its text never holds the secret."""
    return Message(role="user", parts=[TextPart(content="credential attached"),
                                       DataPart(content={"credential": credential})])
