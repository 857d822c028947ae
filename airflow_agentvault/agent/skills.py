"""Skills: the work a reference agent does between WORKING and COMPLETED.

Why it exists: one server (``app.py``/``server.py``) serves many kinds of agent. The task life cycle,
streaming and failure switches stay in :mod:`~airflow_agentvault.agent.tasks`; a skill only turns the
task's input into an answer and artifacts. The default, :data:`ECHO_SKILL`, is the reference agent's
original behaviour (it echoes its input); the research pipeline's seven skills live in
:mod:`airflow_agentvault.agent.research`.

The contract:

* input, :class:`SkillRequest`: the text parts and data parts of every user message of the task,
  as plain Python, plus the task's :class:`AgentBehaviour` (read-only);
* output, :class:`SkillResult`: the answer ``text`` (streamed as token messages when the behaviour
  asks for tokens, else sent as one assistant message) and ``artifacts``, AgentVault artifact dicts
  (``{"id", "type", "content", "url", "mediaType", "metadata"}``, see :func:`make_artifact`). The task
  store prefixes each artifact id with the task id (``result`` becomes ``ref-1a2b3c4d-result``), so a
  skill's ids only need to be unique within one answer;
* a skill that raises ends the task FAILED with the reason ``skill <id> failed: <error>``;
  :class:`SkillInputError` is the polite way to say the input is unusable.

``blocking`` skills (anything that may do I/O, e.g. call an LLM) run in a daemon thread so they never
stall the server's event loop; the echo skill runs inline.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_agentvault.agent.behaviour import AgentBehaviour

ANSWER_PREFIX = "Reference answer:"

DEFAULT_CARD_DESCRIPTION = (
    "Reference AgentVault agent for airflow-agentvault tests: echoes its input as a result artifact, "
    "with switchable failure modes."
)


class SkillInputError(ValueError):
    """The task's input cannot be used by the skill (the task fails with this message)."""


@dataclass(frozen=True)
class SkillRequest:
    """What a skill sees of a task: its user text and data parts, in message order."""

    texts: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    behaviour: AgentBehaviour = field(default_factory=AgentBehaviour)

    @property
    def text(self) -> str:
        """All text parts joined by a space."""
        return " ".join(self.texts)

    @property
    def payload(self) -> dict[str, Any]:
        """All data parts merged into one dict; a later part's keys win."""
        merged: dict[str, Any] = {}
        for part in self.data:
            merged.update(part)
        return merged

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
    def from_messages(cls, messages: list[dict[str, Any]], behaviour: AgentBehaviour) -> SkillRequest:
        """The request of a task whose wire messages are ``messages`` (only user messages count)."""
        texts: list[str] = []
        data: list[dict[str, Any]] = []
        for message in messages:
            if message.get("role") != "user":
                continue
            for part in message.get("parts", []):
                if part.get("type") == "text":
                    texts.append(part["content"])
                elif part.get("type") == "data" and isinstance(part.get("content"), dict):
                    data.append(part["content"])
        return cls(texts=texts, data=data, behaviour=behaviour)


@dataclass
class SkillResult:
    """A skill's answer: the text to send (or stream) and the artifacts to attach, in order."""

    text: str
    artifacts: list[dict[str, Any]] = field(default_factory=list)


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


class EchoSkill(Skill):
    """The reference agent's original work: answer with the input, in ``artifact_count`` artifacts."""

    id = "echo-research"
    name = "Echo research"
    description = "Answers with the text and data parts it was sent."
    blocking = False

    @property
    def card_description(self) -> str:
        return DEFAULT_CARD_DESCRIPTION

    @staticmethod
    def answer(request: SkillRequest) -> str:
        return f"{ANSWER_PREFIX} {' '.join(request.texts) if request.texts else '(no text)'}"

    def run(self, request: SkillRequest) -> SkillResult:
        answer = self.answer(request)
        artifacts = [
            make_artifact(
                "result" if index == 1 else f"result-{index}",
                "result",
                {"answer": answer, "echo": {"text": list(request.texts), "data": list(request.data)}, "index": index},
            )
            for index in range(1, request.behaviour.artifact_count + 1)
        ]
        return SkillResult(answer, artifacts)


ECHO_SKILL = EchoSkill()


def skill_names() -> list[str]:
    """Names :func:`get_skill` accepts: ``echo`` and the research stages."""
    from airflow_agentvault.agent.research.stages import STAGE_NAMES

    return ["echo", *STAGE_NAMES]


def get_skill(name: str) -> Skill:
    """A skill by name: ``echo``, a research stage (``crawl`` or ``research/crawl``), or ``module:attr``.

    ``module:attr`` names a :class:`Skill` instance, a ``Skill`` subclass, or a function taking a
    :class:`SkillRequest`.
    """
    if name in ("", "echo", ECHO_SKILL.id):
        return ECHO_SKILL
    if ":" in name:
        module_name, _, attr = name.partition(":")
        target = getattr(importlib.import_module(module_name), attr)
        if isinstance(target, Skill):
            return target
        if isinstance(target, type) and issubclass(target, Skill):
            return target()
        if callable(target):
            return FunctionSkill(target, skill_id=name, name=attr)
        raise ValueError(f"{name} is not a skill")
    from airflow_agentvault.agent.research.stages import STAGE_NAMES, research_skill

    stage = name.removeprefix("research/").removeprefix("research.")
    if stage in STAGE_NAMES:
        return research_skill(stage)
    raise ValueError(f"unknown skill {name!r}; known: {', '.join(skill_names())} or module:attr")
