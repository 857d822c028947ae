"""
Typed models of AgentVault's wire format (PROTOCOLS.md section 1), used by both clients.

Unknown extra fields are tolerated (``extra="allow"``) so a newer agent does not break us; a missing
required field is a protocol violation that quotes the field (see :func:`parse_model`). Field names are
snake_case in Python and camelCase on the wire.
"""

from __future__ import annotations

import enum
import json
import operator
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from airflow_agentvault.protocol.errors import ProtocolViolationError


class WireModel(BaseModel):
    """Base: camelCase aliases, extra fields kept, populate by Python name too."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", defer_build=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class TaskState(str, enum.Enum):
    """AgentVault states, plus the A2A-only ones other dialects normalise into."""

    SUBMITTED = "SUBMITTED"
    WORKING = "WORKING"
    INPUT_REQUIRED = "INPUT_REQUIRED"
    AUTH_REQUIRED = "AUTH_REQUIRED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def ends_wait(self) -> bool:
        """Terminal, or stopped until someone outside answers: waiting longer cannot help."""
        return self in TERMINAL_STATES or self in (TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED)


TERMINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED})


class TextPart(WireModel):
    type: Literal["text"] = "text"
    content: str


class DataPart(WireModel):
    type: Literal["data"] = "data"
    content: dict[str, Any]
    media_type: str | None = "application/json"


class FilePart(WireModel):
    type: Literal["file"] = "file"
    url: str
    media_type: str | None = None
    filename: str | None = None


Part = Annotated[TextPart | DataPart | FilePart, Field(discriminator="type")]


class Message(WireModel):
    role: Literal["user", "assistant", "system", "tool"]
    parts: list[Part] = Field(min_length=1)
    metadata: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The message's text parts joined: what a person would read."""
        parts = self.parts
        if len(parts) == 1:  # a streamed token: no join
            part = parts[0]
            return part.content if isinstance(part, TextPart) else ""
        return "".join(p.content for p in parts if isinstance(p, TextPart))

    def fingerprint(self) -> str:
        return json.dumps(self.to_wire(), sort_keys=True)


class Artifact(WireModel):
    id: str
    type: str
    content: Any = None
    url: str | None = None
    media_type: str | None = None
    metadata: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        """Size of the inline content in bytes as JSON (0 for by-reference artifacts)."""
        if self.content is None:
            return 0
        if isinstance(self.content, str):
            return len(self.content.encode())
        return len(json.dumps(self.content, separators=(",", ":")).encode())


#: The token counts a task's usage may report (GenAI's ``gen_ai.usage.*`` names them the same).
USAGE_KEYS = ("input_tokens", "output_tokens")


class Task(WireModel):
    id: str
    state: TaskState
    created_at: datetime | None = None
    updated_at: datetime | None = None
    messages: list[Message] = Field(default_factory=list)
    artifacts: list[Artifact] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    #: The A2A conversation the task belongs to; a follow-up message names it.
    context_id: str | None = None

    def usage(self) -> dict[str, int]:
        """
        The tokens the agent says the task used: ``metadata.usage`` of the task, else of its last message.

        The shape AgentVault agents report (``{"input_tokens": n, "output_tokens": m}``); counts that are
        not whole numbers are left out, and an agent that reports nothing gives ``{}``.
        """
        sources = [self.metadata] + [m.metadata for m in reversed(self.messages) if m.role != "user"]
        for metadata in sources:
            usage = (metadata or {}).get("usage")
            if isinstance(usage, dict):
                return {key: value for key in USAGE_KEYS if type(value := usage.get(key)) is int and value >= 0}
        return {}

    def last_agent_text(self) -> str | None:
        for message in reversed(self.messages):
            if message.role != "user" and message.text:
                return message.text
        return None

    def answer_text(self) -> str | None:
        """
        What a person would call the agent's answer: its reply since the last user message.

        An agent that streams its answer token by token sends many one-word messages: they are one
        answer, joined (with spaces unless the tokens carry their own). Otherwise the answer is the
        last message; earlier ones are progress ("searching...") and stay in ``messages``.
        """
        replies = reply_fragments(self.messages)
        if not replies:
            return None
        return join_fragments([m.text for m in replies]) if is_token_stream(replies) else replies[-1].text


def reply_fragments(messages: list[Message]) -> list[Message]:
    """The agent's text messages after the last user message."""
    replies: list[Message] = []
    for message in messages:
        if message.role == "user":
            replies = []
        elif message.text:
            replies.append(message)
    return replies


def is_token_stream(messages: list[Message]) -> bool:
    """Several messages of at most one word each: an answer streamed token by token."""
    return len(messages) > 1 and all(len(m.text.split()) <= 1 and len(m.parts) == 1 for m in messages)


def join_fragments(texts: list[str]) -> str:
    # map over str methods rather than generator expressions: a streamed answer has thousands of tokens
    if any(map(str.isspace, map(_FIRST_CHAR, texts[1:]))):
        return "".join(texts).strip()
    return " ".join(map(str.strip, texts))


_FIRST_CHAR = operator.itemgetter(slice(0, 1))


class TaskStatusEvent(WireModel):
    task_id: str
    state: TaskState
    timestamp: datetime | None = None
    message: str | Message | None = None

    @property
    def message_text(self) -> str | None:
        if isinstance(self.message, Message):
            return self.message.text or None
        return self.message


class TaskMessageEvent(WireModel):
    task_id: str
    message: Message
    timestamp: datetime | None = None


class TaskArtifactEvent(WireModel):
    task_id: str
    artifact: Artifact
    timestamp: datetime | None = None


TaskEvent = TaskStatusEvent | TaskMessageEvent | TaskArtifactEvent


def ends_wait(event: TaskEvent) -> bool:
    """
    Whether ``event`` is a status that ends the wait; asked of every streamed event.

    A type comparison rather than ``isinstance``: pydantic models' metaclass is an ABCMeta, whose
    instance check costs about 200 ns when it fails (as for every token of a streamed answer).
    """
    return type(event) is TaskStatusEvent and event.state.ends_wait


class AuthScheme(WireModel):
    scheme: str
    description: str | None = None
    token_url: str | None = None
    service_identifier: str | None = None


class Provider(WireModel):
    name: str | None = None
    url: str | None = None


class AgentCard(WireModel):
    name: str
    url: str
    description: str | None = None
    schema_version: str | None = None
    human_readable_id: str | None = None
    agent_version: str | None = None
    provider: Provider | None = None
    capabilities: dict[str, Any] = Field(default_factory=dict)
    auth_schemes: list[AuthScheme] = Field(default_factory=list)
    skills: list[dict[str, Any]] | None = None
    tags: list[str] | None = None

    def summary(self) -> str:
        schemes = ", ".join(s.scheme for s in self.auth_schemes) or "none declared"
        version = f" v{self.agent_version}" if self.agent_version else ""
        skills = len(self.skills or [])
        return f"{self.name}{version} at {self.url} (auth: {schemes}; {skills} skill{'s' * (skills != 1)})"


class SendResult(WireModel):
    id: str


class CancelResult(WireModel):
    success: bool
    message: str | None = None


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any, **where: Any) -> M:
    """Validate ``data`` as ``model``; any mismatch becomes a ProtocolViolationError naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '<root>'}': {err['msg']}" for err in exc.errors()[:5]
        )
        raise ProtocolViolationError(f"agent sent an invalid {model.__name__}: {problems}", **where) from None


#: Each model's JSON validator, looked up once (building the schema on first use, as validation does).
_JSON_VALIDATORS: dict[type[BaseModel], Callable[[str | bytes], Any]] = {}


def model_from_json(model: type[M], data: str | bytes) -> M | None:
    """
    ``model`` validated straight from JSON text in one pass (no dict in between), as :func:`parse_model`
    of the decoded JSON would give it; None when the text is not JSON or not a valid ``model``, for the
    caller's slower path that says what is wrong.
    """
    validate = _JSON_VALIDATORS.get(model)
    if validate is None:
        validate = _JSON_VALIDATORS[model] = model.__pydantic_validator__.validate_json
    try:
        parsed: M = validate(data)
    except ValidationError:
        return None
    return parsed


def build_all() -> None:
    """
    Build every wire model's schema now instead of on first use.

    Task processes leave them deferred (most never touch most models); the triggerer calls this when
    the trigger module loads, so no schema is built inside its event loop.
    """
    for model in (TextPart, DataPart, FilePart, Message, Artifact, Task, TaskStatusEvent, TaskMessageEvent,
                  TaskArtifactEvent, AuthScheme, Provider, AgentCard, SendResult, CancelResult):
        model.model_rebuild(force=True)
    _JSON_VALIDATORS.clear()
