"""
The reference agent's task journal: what a restart keeps, and the run it cut off done again from its start.

Two task stores over one SQLite file stand for the agent before and after a restart (the process-level kill is
``tests/faults/test_agent_restart.py``). Waits poll the store's state, each within a bound.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agentvault_stack.agent.behaviour import AgentBehaviour
from agentvault_stack.agent.journal import TaskJournal
from agentvault_stack.agent.tasks import TaskStore

MESSAGE = {"role": "user", "parts": [{"type": "text", "content": "one two three four five"}]}
BEHAVIOUR = AgentBehaviour(work_seconds=0.04, tokens_per_second=100)


async def until(condition, bound: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while not condition():
        assert loop.time() < deadline, "condition not met within its bound"
        await asyncio.sleep(0.005)


def test_a_run_cut_off_by_a_restart_is_done_again_to_the_same_answer(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite"

    async def before() -> tuple[str, int]:
        store = TaskStore(journal=TaskJournal(path))
        task = store.create(MESSAGE, BEHAVIOUR)
        await until(lambda: len(task.messages) >= 3)  # some words streamed: the restart cuts the run here
        words = len(task.messages)
        task.worker.cancel()  # the process dies: nothing more is saved
        store.journal.close()
        return task.id, words

    async def after(task_id: str) -> dict:
        store = TaskStore(journal=TaskJournal(path))
        restored = store.get(task_id)
        assert restored.state == "WORKING" and len(restored.messages) == 1  # saved at WORKING, before the words
        store.recover()
        await until(lambda: store.get(task_id).state == "COMPLETED")
        await store.shutdown()
        return store.get(task_id).to_wire()

    task_id, words = asyncio.run(before())
    assert words >= 3
    done = asyncio.run(after(task_id))
    text = "".join(part["content"] for m in done["messages"][1:] for part in m["parts"])
    assert text == "Reference answer: one two three four five"  # every word once
    assert len(TaskJournal(path).load()) == 1


def test_a_finished_task_and_one_waiting_for_a_person_are_kept_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite"

    async def before() -> tuple[str, str]:
        store = TaskStore(journal=TaskJournal(path))
        done = store.create(MESSAGE, AgentBehaviour(work_seconds=0.01))
        asking = store.create(MESSAGE, AgentBehaviour(work_seconds=0.01, input_required=True))
        await until(lambda: done.state == "COMPLETED" and asking.state == "INPUT_REQUIRED")
        await store.shutdown()
        return done.id, asking.id

    done_id, asking_id = asyncio.run(before())

    async def after() -> None:
        store = TaskStore(journal=TaskJournal(path))
        store.recover()
        assert store.get(done_id).state == "COMPLETED" and store.get(done_id).worker is None
        asking = store.get(asking_id)
        assert asking.state == "INPUT_REQUIRED" and asking.pending is not None and asking.worker is None
        store.follow_up(asking_id, {"role": "user", "parts": [{"type": "text", "content": "yes"}]})
        await until(lambda: asking.state == "COMPLETED")  # the answer resumes it, as without a restart
        await store.shutdown()

    asyncio.run(after())
