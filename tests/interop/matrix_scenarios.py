"""The interop scenarios, written once and run through the sync and the async paths.

Each scenario is an ``async`` function of an :class:`Api` and a :class:`Server`. :class:`SyncApi` runs our
synchronous client and :class:`~airflow_agentvault.protocol.client.TaskFollower` (requests,
what the operators use) in a worker thread; :class:`AsyncApi` awaits the asynchronous
client and :class:`~airflow_agentvault.protocol.async_client.AsyncTaskFollower` (httpx, the
triggers' path). A scenario asserts what must hold and returns a *digest*: the normalised, deterministic
part of what it saw (states, artifacts, error types, the agent's words, delivery paths), with task ids
replaced by ``<task>``. The matrix requires the two digests to be equal.

A digest's ``answer``, where a scenario gives one, is how the server answered the interesting call (it
differs between servers that all pass); the table lists it. A scenario raises :class:`Unsupported` with
the server's own answer when the server cannot do what the
scenario asks (e.g. AgentVault has no artifact chunks); the matrix records that answer.

Every wait is bounded (:data:`WAIT`); waits poll a condition (``get`` until a state), never sleep blind.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_agentvault.protocol import errors, operations, receiver
from airflow_agentvault.protocol.async_client import AsyncAgentClient, AsyncTaskFollower
from airflow_agentvault.protocol.client import AgentClient, TaskFollower
from airflow_agentvault.protocol.dialects import codec_for
from airflow_agentvault.protocol.dialects.cards import choose
from airflow_agentvault.protocol.errors import StreamUnavailableError
from airflow_agentvault.protocol.follow import PATH_ALREADY_FINISHED, PATH_PUSH, PATH_STREAM, Follower, FollowOutcome
from airflow_agentvault.protocol.models import (
    Message,
    Task,
    TaskArtifactEvent,
    TaskEvent,
    TaskMessageEvent,
    TaskState,
    TaskStatusEvent,
    TextPart,
)
from airflow_agentvault.protocol.push import PushPlan
from airflow_agentvault.protocol.result import outcome_of
from airflow_agentvault.protocol.timing import Timing

#: Bound of every wait for a state, in seconds.
WAIT = 15.0
#: How often a bounded wait looks again.
POLL = 0.05
TIMING = Timing(sse_retry_delay=0.05, poll_interval=0.05, read_timeout=10, overall_timeout=30)


class Unsupported(Exception):
    """The server cannot do what the scenario asks; ``answer`` is what it said instead."""

    def __init__(self, answer: str, digest: dict[str, Any]) -> None:
        super().__init__(answer)
        self.answer = answer
        self.digest = digest


@dataclass(frozen=True)
class Server:
    """One row of the matrix: a real server on 127.0.0.1 and the dialect we speak to it."""

    key: str
    label: str
    dialect: str
    base_url: str
    rpc_url: str
    auto_dialect: str  # what ``auto`` must choose when the connection names rpc_url
    chunking: bool  # the protocol has artifact chunks (A2A) or not (AgentVault)
    fail_reason: str
    input_prompt: str

    def expected_artifact(self, text: str, chunks: int = 1) -> Any:
        if self.chunking:
            return "".join(f"chunk-{i} " for i in range(1, chunks + 1))
        return {"answer": text}


# -- the two paths ---------------------------------------------------------------------------------------


class Api:
    mode = ""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def send(self, text: str) -> str:
        raise NotImplementedError

    async def get(self, task_id: str) -> Task:
        raise NotImplementedError

    async def cancel(self, task_id: str):
        raise NotImplementedError

    async def subscribe(self, task_id: str, read_timeout: float) -> tuple[list[TaskEvent], Exception | None]:
        raise NotImplementedError

    async def follow(self, task_id: str) -> tuple[FollowOutcome, list[TaskEvent]]:
        raise NotImplementedError

    async def discover(self):
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def say(text: str) -> Message:
    return Message(role="user", parts=[TextPart(content=text)])


class SyncApi(Api):
    """Our synchronous client and follower (the operators' path), run in a worker thread."""

    mode = "sync"

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self.client = AgentClient(server.rpc_url, codec=codec_for(server.dialect), connect_timeout=2, read_timeout=10)

    async def send(self, text: str) -> str:
        return await asyncio.to_thread(self.client.send, say(text))

    async def get(self, task_id: str) -> Task:
        return await asyncio.to_thread(self.client.get, task_id)

    async def cancel(self, task_id: str):
        return await asyncio.to_thread(self.client.cancel, task_id)

    async def subscribe(self, task_id: str, read_timeout: float):
        def collect():
            events: list[TaskEvent] = []
            try:
                for event in self.client.subscribe(task_id, read_timeout=read_timeout):
                    events.append(event)
            except errors.AgentVaultError as exc:
                return events, exc
            return events, None

        return await asyncio.to_thread(collect)

    async def follow(self, task_id: str):
        events: list[TaskEvent] = []
        follower = TaskFollower(self.client, TIMING, on_event=events.append)
        return await asyncio.to_thread(follower.follow, task_id), events

    async def discover(self):
        probe = AgentClient(self.server.base_url, connect_timeout=2, read_timeout=10)
        program = operations.discover(probe.agent, self.server.base_url, endpoint_hint=self.server.rpc_url)
        return await asyncio.to_thread(probe.run, program)

    async def aclose(self) -> None:
        self.client.runner.session.close()


class AsyncApi(Api):
    """Our asynchronous client and follower (the triggers' path)."""

    mode = "async"

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self.client = AsyncAgentClient(server.rpc_url, codec=codec_for(server.dialect), connect_timeout=2,
                                       read_timeout=10)

    async def send(self, text: str) -> str:
        return await self.client.send(say(text))

    async def get(self, task_id: str) -> Task:
        return await self.client.get(task_id)

    async def cancel(self, task_id: str):
        return await self.client.cancel(task_id)

    async def subscribe(self, task_id: str, read_timeout: float):
        events: list[TaskEvent] = []
        try:
            async with contextlib.aclosing(self.client.subscribe(task_id, read_timeout=read_timeout)) as stream:
                async for event in stream:
                    events.append(event)
        except errors.AgentVaultError as exc:
            return events, exc
        return events, None

    async def follow(self, task_id: str):
        events: list[TaskEvent] = []
        follower = AsyncTaskFollower(self.client, TIMING, on_event=events.append)
        return await follower.follow(task_id), events

    async def discover(self):
        async with AsyncAgentClient(self.server.base_url, connect_timeout=2, read_timeout=10) as probe:
            return await probe.run(operations.discover(probe.agent, self.server.base_url,
                                                       endpoint_hint=self.server.rpc_url))

    async def aclose(self) -> None:
        await self.client.aclose()


# -- helpers ---------------------------------------------------------------------------------------------


def anonymise(value: Any, task_id: str | None) -> Any:
    """Replace the (per run) task id by ``<task>`` anywhere in a digest value."""
    if task_id is None:
        return value
    if isinstance(value, str):
        return value.replace(task_id, "<task>")
    if isinstance(value, dict):
        return {anonymise(k, task_id): anonymise(v, task_id) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [anonymise(v, task_id) for v in value]
    return value


def artifacts_of(task: Task) -> list[dict[str, Any]]:
    return [{"id": a.id, "type": a.type, "content": a.content, "url": a.url} for a in task.artifacts]


def kinds(events: list[TaskEvent]) -> list[str]:
    """Events as short labels: ``status:WORKING``, ``artifact:<id>``, ``message:<role>``."""
    labels = []
    for event in events:
        if isinstance(event, TaskStatusEvent):
            labels.append(f"status:{event.state.value}")
        elif isinstance(event, TaskArtifactEvent):
            labels.append(f"artifact:{event.artifact.id}")
        elif isinstance(event, TaskMessageEvent):
            labels.append(f"message:{event.message.role}")
    return labels


def error_name(exc: BaseException | None) -> str | None:
    return type(exc).__name__ if exc is not None else None


async def wait_for(api: Api, task_id: str, condition: Callable[[Task], bool], what: str) -> Task:
    """Poll ``get`` until ``condition`` holds, within :data:`WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        task = await api.get(task_id)
        if condition(task):
            return task
        if time.monotonic() >= deadline:
            raise AssertionError(f"task {task_id} did not become {what} within {WAIT:g} s (last: {task.state.value})")
        await asyncio.sleep(POLL)


def outcome_error(task: Task, api: Api, status_message: str | None = None) -> errors.TaskOutcomeError | None:
    try:
        outcome_of(task, agent_url=api.server.rpc_url, status_message=status_message)
    except errors.TaskOutcomeError as exc:
        return exc
    return None


# -- the scenarios ---------------------------------------------------------------------------------------


async def send_get(api: Api, server: Server) -> dict[str, Any]:
    """``send`` answers before the task ends (non-blocking), ``get`` sees it run and then complete."""
    text = "send-get sleep=0.6"
    task_id = await api.send(text)
    first = await api.get(task_id)
    assert not first.state.ends_wait, f"send blocked until the task ended ({first.state.value})"
    final = await wait_for(api, task_id, lambda t: t.state.ends_wait, "finished")
    assert final.state is TaskState.COMPLETED
    assert final.messages[0].role == "user" and final.messages[0].text == text
    assert [a["content"] for a in artifacts_of(final)] == [server.expected_artifact(text)]
    return anonymise({"first_state_running": True, "state": final.state.value, "artifacts": artifacts_of(final),
                      "user_text": final.messages[0].text}, task_id)


async def stream(api: Api, server: Server) -> dict[str, Any]:
    """The follower streams the task to completion; the result comes from ``get``."""
    text = "stream sleep=0.6"
    task_id = await api.send(text)
    outcome, events = await api.follow(task_id)
    assert outcome.path == PATH_STREAM, f"delivered by {outcome.path}, not the stream"
    assert outcome.task.state is TaskState.COMPLETED
    labels = kinds(events)
    assert labels and labels[-1] == "status:COMPLETED", labels
    result = outcome_of(outcome.task, agent_url=server.rpc_url)
    assert [a["content"] for a in result["artifacts"]] == [server.expected_artifact(text)]
    return anonymise({"path": outcome.path, "state": outcome.task.state.value, "last_event": labels[-1],
                      "artifacts": artifacts_of(outcome.task), "text": result["text"]}, task_id)


async def subscribe_running(api: Api, server: Server) -> dict[str, Any]:
    """Subscribing to a task that is already WORKING yields the rest of its events, up to COMPLETED."""
    text = "subscribe sleep=1.2"
    task_id = await api.send(text)
    await wait_for(api, task_id, lambda t: t.state is TaskState.WORKING, "WORKING")
    events, exc = await api.subscribe(task_id, read_timeout=10)
    assert exc is None, f"subscription failed: {exc}"
    labels = kinds(events)
    assert labels[-1] == "status:COMPLETED", labels
    streamed = [e.artifact.content for e in events if isinstance(e, TaskArtifactEvent)]
    assert streamed and streamed[-1] == server.expected_artifact(text), streamed
    return anonymise({"events": labels, "snapshot_first": labels[0] == "status:WORKING",
                      "streamed_artifact": streamed[-1], "answer": f"events {', '.join(labels)}"}, task_id)


async def subscribe_finished(api: Api, server: Server) -> dict[str, Any]:
    """Subscribing to a finished task: no stream (or one terminal event), and the follower reads ``get``."""
    text = "finished sleep=0.1"
    task_id = await api.send(text)
    await wait_for(api, task_id, lambda t: t.state.ends_wait, "finished")
    events, exc = await api.subscribe(task_id, read_timeout=5)
    if exc is not None:
        assert isinstance(exc, errors.StreamDisconnectedError), f"{type(exc).__name__}: {exc}"
        answer = f"{error_name(exc)}: {exc.detail}"
    else:
        assert kinds(events) == ["status:COMPLETED"], kinds(events)
        answer = "one terminal status event, then the end of the stream"
    outcome, _ = await api.follow(task_id)
    assert outcome.path == PATH_ALREADY_FINISHED and outcome.task.state is TaskState.COMPLETED
    return anonymise({"answer": answer, "follow_path": outcome.path, "state": outcome.task.state.value}, task_id)


async def unknown_task(api: Api, server: Server) -> dict[str, Any]:
    """``get``, ``subscribe`` and ``cancel`` of a task the agent never had: TaskNotFoundError each time."""
    task_id = f"no-such-task-{uuid.uuid4().hex[:8]}"
    answers: dict[str, Any] = {}
    for op in ("get", "subscribe", "cancel"):
        try:
            if op == "subscribe":
                _, exc = await api.subscribe(task_id, read_timeout=5)
                if exc is not None:
                    raise exc
            else:
                await getattr(api, op)(task_id)
        except errors.AgentVaultError as exc:
            assert isinstance(exc, errors.TaskNotFoundError), f"{op}: {type(exc).__name__}: {exc}"
            assert exc.retryable and exc.task_id == task_id
            answers[op] = error_name(exc)
            if op == "get":
                answers["answer"] = anonymise(f"get: {exc.detail}" + (f" (code {exc.code})" if exc.code else ""),
                                              task_id)
        else:
            raise AssertionError(f"{op} of an unknown task did not fail")
    return answers


async def cancel_running(api: Api, server: Server) -> dict[str, Any]:
    """``cancel`` of a WORKING task succeeds and the task ends CANCELED; a second cancel changes nothing."""
    text = "cancel sleep=5"
    task_id = await api.send(text)
    await wait_for(api, task_id, lambda t: t.state is TaskState.WORKING, "WORKING")
    first = await api.cancel(task_id)
    assert first.success, first
    final = await wait_for(api, task_id, lambda t: t.state.ends_wait, "finished")
    assert final.state is TaskState.CANCELED
    # A second cancel: most servers refuse it (TaskNotCancelable: success=False); @a2a-js/sdk answers the
    # CANCELED task again (idempotent: success=True). Either way the task stays CANCELED.
    again = await api.cancel(task_id)
    if again.success:
        assert again.message == f"task is {TaskState.CANCELED.value}", again
    still = await api.get(task_id)
    assert still.state is TaskState.CANCELED, still.state
    outcome, _ = await api.follow(task_id)
    error = outcome_error(outcome.task, api, outcome.status_message)
    assert isinstance(error, errors.TaskCanceledError)
    return anonymise({"cancel": first.success, "state": final.state.value, "cancel_again": again.success,
                      "outcome": error_name(error),
                      "answer": f"second cancel: success={again.success} ({again.message})"}, task_id)


async def failed_task(api: Api, server: Server) -> dict[str, Any]:
    """A task the agent fails: FAILED, TaskFailedError with the agent's reason."""
    task_id = await api.send("failing fail sleep=0.4")
    outcome, events = await api.follow(task_id)
    assert outcome.task.state is TaskState.FAILED
    error = outcome_error(outcome.task, api, outcome.status_message)
    assert isinstance(error, errors.TaskFailedError)
    assert error.agent_message == server.fail_reason, error.agent_message
    return anonymise({"path": outcome.path, "state": outcome.task.state.value, "outcome": error_name(error),
                      "agent_message": error.agent_message, "last_event": kinds(events)[-1:]}, task_id)


async def input_required(api: Api, server: Server) -> dict[str, Any]:
    """A task that stops in INPUT_REQUIRED ends the wait at once (no hang) with the agent's question."""
    task_id = await api.send("asking input_required sleep=0.4")
    started = time.monotonic()
    outcome, events = await api.follow(task_id)
    waited = time.monotonic() - started
    assert outcome.task.state is TaskState.INPUT_REQUIRED
    assert waited < 5, f"the follower needed {waited:.1f} s to notice INPUT_REQUIRED"
    error = outcome_error(outcome.task, api, outcome.status_message)
    assert isinstance(error, errors.InputRequiredError)
    assert error.agent_message == server.input_prompt, error.agent_message
    # Subscribing again to the stopped task must end too: with the snapshot, or an error that means "no stream".
    events_again, exc = await api.subscribe(task_id, read_timeout=1.5)
    if exc is None:
        assert kinds(events_again)[-1] == "status:INPUT_REQUIRED", kinds(events_again)
        again = f"resubscribe: events {', '.join(kinds(events_again))}"
    else:
        assert isinstance(exc, errors.StreamDisconnectedError), f"{type(exc).__name__}: {exc}"
        detail = exc.detail
        if not isinstance(exc, StreamUnavailableError):  # the HTTP library's exception name is no part of it
            detail = re.sub(r" \(\w+\)$", "", detail) + " within the 1.5 s read timeout (the agent keeps it open)"
        again = f"resubscribe: {error_name(exc)}: {detail}"
    return anonymise({"path": outcome.path, "state": outcome.task.state.value, "outcome": error_name(error),
                      "agent_message": error.agent_message, "answer": again}, task_id)


async def chunked_artifact(api: Api, server: Server) -> dict[str, Any]:
    """An artifact sent in 3 chunks (``append`` / ``lastChunk``) is reassembled into one, streamed and in ``get``."""
    text = "chunky chunks=3 sleep=0.6"
    task_id = await api.send(text)
    outcome, events = await api.follow(task_id)
    assert outcome.task.state is TaskState.COMPLETED
    streamed = [e.artifact for e in events if isinstance(e, TaskArtifactEvent)]
    stored = artifacts_of(outcome.task)
    digest = anonymise({"path": outcome.path, "streamed": [a.content for a in streamed], "stored": stored}, task_id)
    if not server.chunking:
        raise Unsupported(f"the AgentVault protocol has no artifact chunks; the agent answered one artifact "
                          f"{anonymise(stored, task_id)!r}", digest)
    expected = server.expected_artifact(text, chunks=3)
    assert len({a.id for a in streamed}) == 1 and streamed[-1].content == expected, [a.content for a in streamed]
    assert len(stored) == 1
    if stored[0]["content"] != expected:
        # Is it the open subscription? The same task once more, only polled with get this time.
        unwatched_id = await api.send(text)
        unwatched = await wait_for(api, unwatched_id, lambda t: t.state.ends_wait, "finished")
        alone = [a.content for a in unwatched.artifacts]
        raise Unsupported(
            f"tasks/get answers {stored[0]['content']!r} after a subscription followed the task, while the stream "
            f"reassembled {expected!r}; for the same task followed by polling only, tasks/get answers {alone!r}",
            digest)
    return digest


async def card_and_auto(api: Api, server: Server) -> dict[str, Any]:
    """The agent card lists this row's dialect, and ``auto`` picks the expected one for the row's endpoint."""
    found = await api.discover()
    assert found.dialect == server.auto_dialect, found
    listed = choose(found.card, dialect=server.dialect)
    path = found.card.url.replace(server.base_url, "")
    return {"card_kind": found.card.kind, "auto": found.dialect, "row_dialect_listed": listed.dialect,
            "card_path": path, "warnings": found.card.warnings,
            "answer": f"{found.card.kind} card at {path}; auto chooses {found.dialect}"}


#: (key, column title, function), in table order.
async def push(api: Api, server: Server) -> dict[str, Any]:
    """The agent takes a push config naming our receiver and calls back; the wait holds no connection.

    Both paths wait through the asyncio runner, the only one with a receiver (a worker always streams).
    """
    text = "push sleep=1.5"
    task_id = await api.send(text)
    rec = await receiver.shared_receiver()
    channel = rec.open("matrix-token")
    plan = PushPlan(channel.url, channel.doorbell, safety_poll=60.0, token=channel.token)
    try:
        async with AsyncAgentClient(server.rpc_url, codec=codec_for(server.dialect), connect_timeout=2,
                                    read_timeout=10) as client:
            request = client.agent.codec.push_register_request(client.rpc_url, task_id, plan.config_id, plan.url,
                                                               plan.token)
            if request is None:
                raise Unsupported("the dialect has no push notifications", {"push": None})
            try:
                await client.run(operations.call(client.agent, request))
            except errors.AgentVaultError as exc:
                raise Unsupported(exc.detail, {"push": type(exc).__name__}) from None
            follower = Follower(client.agent, TIMING)
            outcome = await receiver.wait_by_push(client, follower,
                                                  await client.run(follower.follow_by_push(task_id, plan)))
        rung = rec.counts["rung"]
    finally:
        rec.close(channel)
        await receiver.stop_shared()
    assert outcome.path == PATH_PUSH, f"delivered by {outcome.path}, not by push"
    assert outcome.task.state is TaskState.COMPLETED
    assert rung > 0, "the agent never called back"
    return anonymise({"path": outcome.path, "state": outcome.task.state.value,
                      "text": outcome_of(outcome.task, agent_url=server.rpc_url)["text"]}, task_id)


SCENARIOS: list[tuple[str, str, Callable]] = [
    ("card", "card / auto", card_and_auto),
    ("send_get", "send + get", send_get),
    ("stream", "stream to completion", stream),
    ("subscribe_running", "subscribe while running", subscribe_running),
    ("subscribe_finished", "subscribe to finished task", subscribe_finished),
    ("unknown_task", "unknown task", unknown_task),
    ("cancel_running", "cancel while running", cancel_running),
    ("failed", "failed task", failed_task),
    ("input_required", "stops in input-required", input_required),
    ("chunked", "chunked artifact", chunked_artifact),
    ("push", "wait by push notification", push),
]
