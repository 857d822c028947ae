"""Task store and simulated work of the reference agent, in AgentVault's wire shapes.

Why it exists: the operators need an agent whose task life cycle (states, messages, artifacts, SSE events) is
byte-compatible with ``agentvault-server-sdk`` but whose failure modes can be switched on (:class:`AgentBehaviour`).
Everything here runs on the server's event loop: no locks, and no ``await`` between checking a task's state and
registering a stream subscriber, so a subscriber never misses an event emitted after it subscribed.

What it does not do: replay. A subscriber gets only events emitted after it subscribed; one to a task already
ended or waiting (``INPUT_REQUIRED``, ``AUTH_REQUIRED``) gets that last ``task_status`` event once and the stream
closes (the real SDK sends nothing and leaves the client hanging).

Restarts: with a journal (``--task-store``, see ``journal.py``) the tasks outlive the process. A task that was
SUBMITTED or WORKING when the agent stopped has the output of its cut-off run dropped and that run started again
(:meth:`TaskStore.recover`): the task ends as it would have without the restart, with no second task and no
repeated words, and a client that resubscribes sees the run's events again. A task waiting for a person keeps
waiting; an ended one stays as it ended. Without a journal a restart forgets every task ("Task not found").

Asking a person: a question is an assistant message (text, plus a data part ``{"options": [...]}`` when it offers
choices) and the status message of INPUT_REQUIRED (the plain text, or that same message when it has options). A
follow-up resumes the task with the answer recorded. A credential sent for AUTH_REQUIRED is checked, then stored
as ``[redacted]``: no message, artifact or reason repeats it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

from agentvault_stack.agent import telemetry
from agentvault_stack.agent.agent_task import AgentTask, TaskNotFound, tokens_of
from agentvault_stack.agent.behaviour import AgentBehaviour, Question
from agentvault_stack.agent.contract import Answer, Skill, SkillRequest
from agentvault_stack.agent.journal import TaskJournal
from agentvault_stack.agent.messages import (
    AUTH_REQUIRED,
    CANCELED,
    COMPLETED,
    CREDENTIAL_REJECTED,
    FAILED,
    FAILURE_REASON,
    INPUT_REQUIRED,
    PROGRESS_TEXT,
    STREAM_END_STATES,
    TERMINAL_STATES,
    WORKING,
    answer_of,
    assistant_message,
    credential_of,
    new_task_id,
    now_iso,
    question_message,
    redacted,
)
from agentvault_stack.agent.skills import ECHO_SKILL, run_skill

__all__ = ["AgentTask", "TaskNotFound", "TaskStore"]

_CLOSE = object()  # queue sentinel: close the stream without an event (server shutdown)


class TaskStore:
    """All tasks of one agent, their simulated work, and their SSE subscribers."""

    def __init__(self, skill: Skill | None = None, journal: TaskJournal | None = None) -> None:
        self._tasks: dict[str, AgentTask] = {}
        self.skill = skill or ECHO_SKILL
        self.journal = journal
        if journal is not None:
            for saved in journal.load():
                task = AgentTask.restored(saved)
                self._tasks[task.id] = task

    def recover(self) -> None:
        """After a restart: run again, from where it began, each run the restart cut off.

        A task the journal holds as SUBMITTED or WORKING was being worked on when the agent stopped.
        What that run had produced is dropped and the run starts over, so the task ends as it would
        have without the restart (one task, one answer; a subscriber sees the run's events again).
        Must run on the event loop.
        """
        for task in self._tasks.values():
            if task.state in STREAM_END_STATES or task.worker is not None:
                continue
            task.roll_back_run()
            self._start(task, resume=task.run_resumes)

    def __len__(self) -> int:
        return len(self._tasks)

    def states(self) -> dict[str, int]:
        """How many tasks are in each state (for ``/_control/stats``)."""
        counts: dict[str, int] = {}
        for task in self._tasks.values():
            counts[task.state] = counts.get(task.state, 0) + 1
        return counts

    # -- JSON-RPC operations -------------------------------------------------------------

    def create(self, message: dict[str, Any], behaviour: AgentBehaviour) -> AgentTask:
        """Store a new SUBMITTED task and start its work; must run on the event loop."""
        task_id = new_task_id()
        while task_id in self._tasks:
            task_id = new_task_id()
        created = now_iso()
        task = AgentTask(
            id=task_id,
            behaviour=behaviour,
            messages=[redacted(message)],
            visible_at=time.monotonic() + behaviour.visible_after_seconds,
            created_at=created,
            updated_at=created,
        )
        self._tasks[task_id] = task
        task.begin_run(resumes=False)
        self._save(task)
        self._start(task, resume=False)
        return task

    def _start(self, task: AgentTask, *, resume: bool) -> None:
        task.worker = asyncio.get_running_loop().create_task(
            telemetry.traced_work(self._work(task, resume=resume), task.id, self.skill.id))

    def _save(self, task: AgentTask) -> None:
        if self.journal is not None:
            self.journal.save(task.saved())

    def get(self, task_id: str) -> AgentTask:
        """The task, unless unknown or still invisible (:class:`TaskNotFound`)."""
        task = self._tasks.get(task_id)
        if task is None or time.monotonic() < task.visible_at:
            raise TaskNotFound(task_id)
        return task

    def follow_up(
        self, task_id: str, message: dict[str, Any], overrides: dict[str, Any] | None = None
    ) -> AgentTask:
        """Append a user message; a task waiting for a person resumes with it.

        In INPUT_REQUIRED the message answers the pending question. In AUTH_REQUIRED it must carry the
        expected credential, else the task fails. ``overrides`` (the follow-up's own ``reference_agent``
        metadata) apply to the resumed work.
        """
        task = self.get(task_id)
        task.behaviour = task.behaviour.with_overrides(overrides)
        credential = credential_of(message)
        task.messages.append(redacted(message))
        task.updated_at = now_iso()
        if task.state == AUTH_REQUIRED:
            expected = task.behaviour.require_credential
            if credential is None or expected is None or not hmac.compare_digest(credential, expected):
                self._fail(task, CREDENTIAL_REJECTED)
                return task
            task.authorised = True
        elif task.state == INPUT_REQUIRED:
            if task.pending is not None:
                task.answers.append(Answer(task.pending.text, answer_of(message)))
                task.pending = None
        else:
            self._save(task)
            return task
        task.begin_run(resumes=True)
        self._set_state(task, WORKING)
        self._start(task, resume=True)
        return task

    def cancel(self, task_id: str) -> bool:
        """Cancel a task that has not finished; ``False`` for a finished or canceled one."""
        task = self.get(task_id)
        if task.state in TERMINAL_STATES:
            return False
        if task.worker is not None and not task.worker.done():
            task.worker.cancel()
        self._set_state(task, CANCELED)
        return True

    def subscribe(self, task: AgentTask) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events of ``task`` from now on, ending after a stream-ending status.

        Registration happens here, synchronously, not when the iterator is first advanced, so
        nothing emitted between this call and the response starting is lost.
        """
        limit = task.behaviour.drop_stream_after_events
        if task.state in STREAM_END_STATES:
            return self._replay_last_status(task, limit)
        queue: asyncio.Queue = asyncio.Queue()
        task.subscribers.add(queue)
        return self._drain(task, queue, limit)

    # -- life cycle ----------------------------------------------------------------------

    def close_streams(self) -> None:
        """End every open stream at once, so server shutdown does not wait on idle streams."""
        for task in self._tasks.values():
            for queue in task.subscribers:
                queue.put_nowait(_CLOSE)
            task.subscribers.clear()

    async def shutdown(self) -> None:
        """Close streams and stop all simulated work (server shutdown)."""
        self.close_streams()
        workers = [t.worker for t in self._tasks.values() if t.worker and not t.worker.done()]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self.journal is not None:
            self.journal.close()

    # -- internals -----------------------------------------------------------------------

    async def _replay_last_status(
        self, task: AgentTask, limit: int | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if limit == 0:
            return
        yield "task_status", task.last_status or self._status_data(task, None)

    async def _drain(
        self, task: AgentTask, queue: asyncio.Queue, limit: int | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        try:
            sent = 0
            while limit is None or sent < limit:
                item = await queue.get()
                if item is _CLOSE:
                    return
                yield item
                sent += 1
                name, data = item
                if name == "task_status" and data["state"] in STREAM_END_STATES:
                    return
        finally:
            task.subscribers.discard(queue)

    def _emit(self, task: AgentTask, event: str, data: dict[str, Any]) -> None:
        for queue in task.subscribers:
            queue.put_nowait((event, data))

    @staticmethod
    def _status_data(task: AgentTask, message: str | dict[str, Any] | None) -> dict[str, Any]:
        return {"taskId": task.id, "state": task.state, "timestamp": task.updated_at, "message": message}

    def _set_state(self, task: AgentTask, state: str, message: str | dict[str, Any] | None = None) -> None:
        task.state = state
        task.updated_at = now_iso()
        task.last_status = self._status_data(task, message)
        self._emit(task, "task_status", task.last_status)
        self._save(task)  # the journal follows the states; tokens in between are made again on a rerun
        if state in STREAM_END_STATES:
            # Every open stream ends on this event; forget the queues (their iterators hold them).
            task.subscribers.clear()

    def _add_message(self, task: AgentTask, message: dict[str, Any], *, emit: bool = True) -> None:
        task.messages.append(message)
        task.updated_at = now_iso()
        if emit:
            self._emit(
                task, "task_message", {"taskId": task.id, "message": message, "timestamp": task.updated_at}
            )

    def _add_artifact(self, task: AgentTask, artifact: dict[str, Any]) -> None:
        task.artifacts.append(artifact)
        task.updated_at = now_iso()
        self._emit(
            task, "task_artifact", {"taskId": task.id, "artifact": artifact, "timestamp": task.updated_at}
        )

    async def _work(self, task: AgentTask, *, resume: bool) -> None:
        """SUBMITTED -> WORKING -> [credential] -> [questions] -> messages or tokens -> artifacts -> end.

        Phases take 1/4, 1/4 and 1/2 of ``work_seconds``; with ``tokens_per_second`` the token
        phase takes as long as the tokens need instead, which is the slow-LLM case. Each stop for a
        person (credential, question, the skill's own question) ends this run; the follow-up starts
        the next one (``resume``), which goes on from where the task stopped.
        """
        try:
            behaviour = task.behaviour
            quarter = behaviour.work_seconds / 4
            if not resume:
                await asyncio.sleep(quarter)
                self._set_state(task, WORKING)
            if behaviour.require_credential is not None and not task.authorised:
                await asyncio.sleep(quarter)
                self._ask(task, AUTH_REQUIRED, Question(text=behaviour.auth_question))
                return
            rounds = behaviour.rounds
            if task.asked < len(rounds):
                await asyncio.sleep(quarter)
                task.asked += 1
                self._ask(task, INPUT_REQUIRED, rounds[task.asked - 1])
                return
            request = SkillRequest.from_messages(task.messages, behaviour, task.answers)
            try:
                result = await run_skill(self.skill, request)
            except Exception as exc:  # the skill's own failure: end FAILED with its reason
                self._fail(task, f"skill {self.skill.id} failed: {exc}")
                return
            if result.question is not None:
                self._ask(task, INPUT_REQUIRED, result.question)
                return
            await self._respond(task, behaviour, quarter, result.text)
            await asyncio.sleep(2 * quarter)
            if behaviour.fail:
                self._fail(task, FAILURE_REASON)
                return
            for artifact in result.artifacts:  # ids made unique per task, as the SDK's are
                self._add_artifact(task, {**artifact, "id": f"{task.id}-{artifact['id']}"})
            telemetry.report_usage(task)
            self._set_state(task, COMPLETED)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must still end the task and its streams
            with contextlib.suppress(Exception):
                self._set_state(task, FAILED, f"reference agent crashed: {exc!r}")

    def _ask(self, task: AgentTask, state: str, question: Question) -> None:
        """Stop for a person: the question as an assistant message and as the status message."""
        message = question_message(question)
        self._add_message(task, message)
        task.pending = question if state == INPUT_REQUIRED else None
        self._set_state(task, state, message if question.options else question.text)

    def _fail(self, task: AgentTask, reason: str) -> None:
        """End FAILED: reason in the status event, a last (unstreamed) message, metadata."""
        self._add_message(task, assistant_message(reason), emit=False)
        task.metadata = {**(task.metadata or {}), "error": reason}
        self._set_state(task, FAILED, reason)

    async def _respond(self, task: AgentTask, behaviour: AgentBehaviour, quarter: float, answer: str) -> None:
        """Token-by-token messages (slow LLM), else one message: the answer, or progress if failing.

        After ``think_seconds`` (a local LLM reading its prompt), tokens come as an LLM streams them:
        each word with the whitespace before it, so the joined tokens are the answer, newlines and
        Markdown structure included.
        """
        if behaviour.think_seconds:
            await asyncio.sleep(behaviour.think_seconds)
        words = tokens_of(answer)
        count = behaviour.tokens or (len(words) if behaviour.tokens_per_second else 0)
        if not count:
            await asyncio.sleep(quarter)
            text = PROGRESS_TEXT if behaviour.fail else answer
            self._add_message(task, assistant_message(text))
            return
        interval = 1 / behaviour.tokens_per_second if behaviour.tokens_per_second else quarter / count
        for index in range(count):
            await asyncio.sleep(interval)
            word = words[index % len(words)]
            if index and not word[:1].isspace():  # the answer again (``tokens`` beyond its length)
                word = f" {word}"
            self._add_message(task, assistant_message(word))
