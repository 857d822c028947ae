"""The skill contract: what a skill is given, and what it answers.

Why it exists: one server (``app.py``/``server.py``) serves many kinds of agent. The task life cycle,
streaming and failure switches stay in :mod:`~agentvault_stack.agent.tasks`; a skill only turns the
task's input into an answer and artifacts. The skills themselves (the echo skill, the research
stages) and the lookup by name live elsewhere (:mod:`~agentvault_stack.agent.skills`), so they all
import this module and it imports none of them.

* input, :class:`SkillRequest`: the text parts and data parts of every user message of the task,
  as plain Python, plus the task's :class:`AgentBehaviour` (read-only);
* output, :class:`SkillResult`: the answer ``text`` (streamed as token messages when the behaviour
  asks for tokens, else sent as one assistant message) and ``artifacts``, AgentVault artifact dicts
  (``{"id", "type", "content", "url", "mediaType", "metadata"}``, see :func:`make_artifact`). The task
  store prefixes each artifact id with the task id (``result`` becomes ``ref-1a2b3c4d-result``), so a
  skill's ids only need to be unique within one answer;
* a skill that raises ends the task FAILED with the reason ``skill <id> failed: <error>``;
  :class:`SkillInputError` is the polite way to say the input is unusable;
* a skill that needs a person's answer returns :meth:`SkillResult.ask`: the task stops in
  INPUT_REQUIRED with that question, and the follow-up runs the skill again with the answer in
  :attr:`SkillRequest.answers`.

``blocking`` skills (anything that may do I/O, e.g. call an LLM) run in a daemon thread so they never
stall the server's event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentvault_stack.agent.behaviour import AgentBehaviour, Question


class SkillInputError(ValueError):
    """The task's input cannot be used by the skill (the task fails with this message)."""


#: Data-part key of a follow-up that answers AUTH_REQUIRED; such parts never reach a skill.
CREDENTIAL_KEY = "credential"


@dataclass(frozen=True)
class Answer:
    """A person's answer to one question the task asked (a follow-up's ``answer`` data, else its text)."""

    question: str
    text: str


@dataclass(frozen=True)
class SkillRequest:
    """What a skill sees of a task: its user text and data parts, in message order."""

    texts: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    behaviour: AgentBehaviour = field(default_factory=AgentBehaviour)
    answers: list[Answer] = field(default_factory=list)
    #: How many of ``texts`` the first user message holds (None: all); later ones came in follow-ups.
    first_message_texts: int | None = None

    @property
    def text(self) -> str:
        """All text parts joined by a space."""
        return " ".join(self.texts)

    @property
    def first_text(self) -> str:
        """The first user message's text parts joined: the request itself, without follow-up answers."""
        return " ".join(self.texts[: self.first_message_texts])

    @property
    def payload(self) -> dict[str, Any]:
        """All data parts merged into one dict; a later part's keys win."""
        merged: dict[str, Any] = {}
        for part in self.data:
            merged.update(part)
        return merged

    def answer_to(self, question: str) -> str | None:
        """The latest answer to ``question``, if it was asked and answered."""
        return next((a.text for a in reversed(self.answers) if a.question == question), None)

    @classmethod
    def of(
        cls, text: str | None = None, data: dict[str, Any] | None = None, behaviour: AgentBehaviour | None = None
    ) -> SkillRequest:
        """A request with at most one text part and one data part (handy for direct calls and tests)."""
        return cls(
            texts=[text] if text else [],
            data=[data] if data is not None else [],
            behaviour=behaviour or AgentBehaviour(),
        )

    @classmethod
    def from_messages(
        cls, messages: list[dict[str, Any]], behaviour: AgentBehaviour, answers: list[Answer] | None = None
    ) -> SkillRequest:
        """The request of a task whose wire messages are ``messages`` (only user messages count).

        Credential data parts are left out: a skill has no use for them and must not echo them.
        """
        texts: list[str] = []
        data: list[dict[str, Any]] = []
        first: int | None = None  # texts of the first user message, once a second one comes
        users = 0
        for message in messages:
            if message.get("role") != "user":
                continue
            users += 1
            if users == 2:
                first = len(texts)
            for part in message.get("parts", []):
                if part.get("type") == "text":
                    texts.append(part["content"])
                elif part.get("type") == "data" and isinstance(part.get("content"), dict):
                    if CREDENTIAL_KEY not in part["content"]:
                        data.append(part["content"])
        return cls(texts=texts, data=data, behaviour=behaviour, answers=list(answers or []),
                   first_message_texts=first)


@dataclass
class SkillResult:
    """A skill's answer: the text to send (or stream) and the artifacts to attach, in order.

    With ``question`` set, the skill has no answer yet: it asks a person first (see :meth:`ask`).
    """

    text: str
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    question: Question | None = None

    @classmethod
    def ask(cls, text: str, options: list[str] | None = None) -> SkillResult:
        """Stop the task in INPUT_REQUIRED with this question (and choices, if any)."""
        return cls(text, question=Question(text=text, options=list(options or [])))


def make_artifact(
    artifact_id: str,
    artifact_type: str,
    content: Any,
    media_type: str = "application/json",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An AgentVault artifact dict in wire form (``url`` is always ``None``: content is inline)."""
    return {
        "id": artifact_id,
        "type": artifact_type,
        "content": content,
        "url": None,
        "mediaType": media_type,
        "metadata": metadata,
    }


class Skill:
    """Base class: set ``id``/``name``/``description`` and implement :meth:`run`."""

    id: str = "skill"
    name: str = "Skill"
    description: str = ""
    #: Run in a thread (may do I/O or heavy work) instead of on the server's event loop.
    blocking: bool = True

    @property
    def card_description(self) -> str:
        """The agent card's ``description`` when this skill is served."""
        return f"Reference AgentVault agent serving the skill '{self.name}': {self.description}"

    def card_entry(self) -> dict[str, Any]:
        """This skill as an entry of the agent card's ``skills`` list."""
        return {"id": self.id, "name": self.name, "description": self.description}

    def run(self, request: SkillRequest) -> SkillResult:
        raise NotImplementedError

    def __call__(self, request: SkillRequest) -> SkillResult:
        return self.run(request)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


class FunctionSkill(Skill):
    """A skill made from a plain function ``request -> SkillResult``."""

    def __init__(
        self,
        func: Callable[[SkillRequest], SkillResult],
        *,
        skill_id: str,
        name: str,
        description: str = "",
        blocking: bool = True,
    ) -> None:
        self.func = func
        self.id = skill_id
        self.name = name
        self.description = description
        self.blocking = blocking

    def run(self, request: SkillRequest) -> SkillResult:
        return self.func(request)
