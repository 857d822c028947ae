"""One task of the reference agent: its wire fields, what its work and streams need, and its saved form.

Why it is its own module: the task store (``tasks.py``) runs the work and the streams, the journal
(``journal.py``) keeps tasks across restarts; both need the same record and the same rule for what of
it survives a restart (:meth:`AgentTask.saved` / :meth:`AgentTask.restored`).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from agentvault_stack.agent.behaviour import AgentBehaviour, Question
from agentvault_stack.agent.contract import Answer
from agentvault_stack.agent.messages import SUBMITTED, now_iso


class TaskNotFound(LookupError):
    """The task id is unknown, or the task is not visible yet (``visible_after_seconds``)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"Task not found: {task_id}")
        self.task_id = task_id


@dataclass(eq=False)
class AgentTask:
    """One task: its wire fields plus what the simulation and the streams need."""

    id: str
    behaviour: AgentBehaviour
    messages: list[dict[str, Any]]
    visible_at: float  # time.monotonic() from which lookups find the task
    state: str = SUBMITTED
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    last_status: dict[str, Any] | None = None  # data of the last task_status event
    asked: int = 0  # how many of the behaviour's questions were asked (one per round)
    pending: Question | None = None  # the question an INPUT_REQUIRED task waits on
    answers: list[Answer] = field(default_factory=list)  # answers so far, in order
    authorised: bool = False  # the expected credential arrived (AUTH_REQUIRED is done)
    # Where the current run of the work began: what a run cut off by a restart is rolled back to.
    run_start: tuple[int, int] = (1, 0)  # messages, artifacts
    run_resumes: bool = False  # the current run continues after a person answered
    subscribers: set[asyncio.Queue] = field(default_factory=set)
    worker: asyncio.Task | None = None

    def to_wire(self) -> dict[str, Any]:
        """The Task object of ``tasks/get``, keys in the SDK's order."""
        return {
            "id": self.id,
            "state": self.state,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "messages": self.messages,
            "artifacts": self.artifacts,
            "metadata": self.metadata,
        }

    def begin_run(self, *, resumes: bool) -> None:
        """A run of the work starts here: remember where, so a restart can roll a cut-off run back."""
        self.run_start = (len(self.messages), len(self.artifacts))
        self.run_resumes = resumes

    def saved(self) -> dict[str, Any]:
        """What survives a restart (JSON): everything but the streams, the worker and the visibility delay."""
        return {
            **self.to_wire(),
            "behaviour": self.behaviour.model_dump(mode="json"),
            "last_status": self.last_status,
            "asked": self.asked,
            "pending": self.pending.model_dump(mode="json") if self.pending else None,
            "answers": [[a.question, a.text] for a in self.answers],
            "authorised": self.authorised,
            "run_start": list(self.run_start),
            "run_resumes": self.run_resumes,
        }

    @classmethod
    def restored(cls, saved: dict[str, Any]) -> AgentTask:
        """A task from :meth:`saved`, visible at once."""
        return cls(
            id=saved["id"],
            behaviour=AgentBehaviour.model_validate(saved["behaviour"]),
            messages=saved["messages"],
            visible_at=time.monotonic(),
            state=saved["state"],
            created_at=saved["createdAt"],
            updated_at=saved["updatedAt"],
            artifacts=saved["artifacts"],
            metadata=saved["metadata"],
            last_status=saved["last_status"],
            asked=saved["asked"],
            pending=Question.model_validate(saved["pending"]) if saved["pending"] else None,
            answers=[Answer(question, text) for question, text in saved["answers"]],
            authorised=saved["authorised"],
            run_start=(saved["run_start"][0], saved["run_start"][1]),
            run_resumes=saved["run_resumes"],
        )

    def roll_back_run(self) -> None:
        """Drop what a run cut off by a restart had produced, so running it again gives the same task."""
        messages, artifacts = self.run_start
        del self.messages[messages:], self.artifacts[artifacts:]


def tokens_of(answer: str) -> list[str]:
    """The answer as an LLM streams it: each word with the whitespace before it (the last keeps what follows)."""
    words = re.findall(r"\s*\S+", answer)
    if not words:
        return [answer]
    words[-1] += answer[len("".join(words)):]
    return words
