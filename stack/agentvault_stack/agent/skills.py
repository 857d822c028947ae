"""The skills a reference agent can serve, by name: the echo skill and the research stages.

Why it exists: ``--skill`` and ``get_skill`` pick what a served agent does. The default,
:data:`ECHO_SKILL`, is the reference agent's original behaviour (it echoes its input, inline on the
event loop); the research pipeline's seven skills live in :mod:`agentvault_stack.agent.research`;
any other :class:`~agentvault_stack.agent.contract.Skill` is named ``module:attr``. What a skill is
given and answers is :mod:`~agentvault_stack.agent.contract`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from typing import Any

from agentvault_stack.agent.contract import FunctionSkill, Skill, SkillRequest, SkillResult, make_artifact

ANSWER_PREFIX = "Reference answer:"

DEFAULT_CARD_DESCRIPTION = (
    "Reference AgentVault agent for airflow-agentvault tests: echoes its input as a result artifact, "
    "with switchable failure modes."
)



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
        """The input echoed; with ``questions`` in the behaviour, the answers to them listed after it.

        (The single ``input_required`` question's follow-up counts as more input: it is echoed only.)
        """
        text = f"{ANSWER_PREFIX} {' '.join(request.texts) if request.texts else '(no text)'}"
        if request.behaviour.questions and request.answers:
            text += f" Answers: {'; '.join(a.text for a in request.answers)}"
        return text

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
    from agentvault_stack.agent.research.inputs import STAGE_NAMES

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
    from agentvault_stack.agent.research.inputs import STAGE_NAMES
    from agentvault_stack.agent.research.stages import research_skill

    stage = name.removeprefix("research/").removeprefix("research.")
    if stage in STAGE_NAMES:
        return research_skill(stage)
    raise ValueError(f"unknown skill {name!r}; known: {', '.join(skill_names())} or module:attr")


async def run_skill(skill: Skill, request: SkillRequest) -> SkillResult:
    """Run ``skill``: inline if it does not block, else in a daemon thread (never joined at shutdown)."""
    if not skill.blocking:
        return skill.run(request)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[SkillResult] = loop.create_future()

    def settle(outcome: Any, failed: bool) -> None:
        if future.done():  # the awaiting task was canceled
            return
        if failed:
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def target() -> None:
        try:
            outcome, failed = skill.run(request), False
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome, failed = exc, True
        except BaseException as exc:  # noqa: BLE001 - SystemExit & co. must not escape a thread
            outcome, failed = RuntimeError(repr(exc)), True
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (server shut down)
            loop.call_soon_threadsafe(settle, outcome, failed)

    threading.Thread(target=target, name=f"skill-{skill.id}", daemon=True).start()
    return await future
