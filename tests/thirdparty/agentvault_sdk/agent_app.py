"""A real third-party AgentVault agent, built on ``agentvault-server-sdk`` 0.1.1, for integration tests.

It runs in its own virtual environment (see ``requirements.txt`` next to this file and
``tests/thirdparty/sdk_venv.py``) because the SDK pins ``fastapi<0.112``::

    python agent_app.py --port 8765 [--api-key KEY] [--no-error-handlers]

Endpoints (mounted like the SDK examples): ``POST /a2a/`` (JSON-RPC; ``/a2a`` answers 307) and
``GET /agent-card.json``.

Every ``tasks/send`` that opens a task starts a background job. The text parts of the user message
steer it (words are matched anywhere in the text):

=====================  ========================================================================
``delay=<seconds>``    time spent in SUBMITTED before WORKING (default 0.1)
``sleep=<seconds>``    time spent WORKING (default 0.3); the assistant message comes half way
``fail``               FAILED half way; the reason is in the status event's ``message``, in a last
                       assistant message and in task ``metadata.error`` (like capture 14/15)
``input_required``     INPUT_REQUIRED half way; a follow-up ``tasks/send`` with the task ``id``
                       resumes the job, which then answers the follow-up text
=====================  ========================================================================

Normal run: ``SUBMITTED`` -> ``WORKING`` -> assistant message ``"half way"`` -> artifact
``{id: "<task>-result", type: "result", content: {"answer": <input text>}}`` -> ``COMPLETED``.
``tasks/cancel`` on a running task stops the job and answers ``success: true`` (-> ``CANCELED``);
on a finished task it answers ``success: false``. Unknown tasks answer -32001 through the SDK's
exception handlers (``--no-error-handlers`` leaves them out: HTTP 500 text/plain, capture 19).
SSE (``tasks/sendSubscribe`` on an existing task) streams the events from the moment of the
subscription and closes after the terminal status; a subscriber to an already finished task gets
one ``task_status`` event with the terminal state (and its message), then the end of the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import re
import uuid
from typing import Any, AsyncGenerator, Optional

import pydantic
import uvicorn
from agentvault.models import (
    AgentCard,
    Artifact,
    DataPart,
    Message,
    Task,
    TaskState,
    TaskStatusUpdateEvent,
    TextPart,
)
from agentvault_server_sdk import (
    AgentProcessingError,
    AgentServerError,
    BaseA2AAgent,
    BaseTaskStore,
    InMemoryTaskStore,
    TaskNotFoundError,
    create_a2a_router,
)
from agentvault_server_sdk.fastapi_integration import (
    agent_server_error_handler,
    generic_exception_handler,
    task_not_found_handler,
    validation_exception_handler,
)
from agentvault_server_sdk.state import TERMINAL_STATES
from fastapi import Depends, FastAPI, HTTPException, Request

logger = logging.getLogger("agentvault_sdk_test_agent")

DEFAULT_DELAY = 0.1
DEFAULT_SLEEP = 0.3
FAIL_REASON = "sdk agent failed on purpose"
INPUT_PROMPT = "need more input: send a follow-up message to this task"
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


@dataclasses.dataclass
class JobOptions:
    delay: float = DEFAULT_DELAY
    sleep: float = DEFAULT_SLEEP
    fail: bool = False
    input_required: bool = False

    @classmethod
    def from_text(cls, text: str) -> "JobOptions":
        opts = cls()
        if m := re.search(r"\bdelay=" + _NUMBER, text):
            opts.delay = float(m.group(1))
        if m := re.search(r"\bsleep=" + _NUMBER, text):
            opts.sleep = float(m.group(1))
        opts.fail = re.search(r"\bfail\b", text) is not None
        opts.input_required = re.search(r"\binput_required\b", text) is not None
        return opts


@dataclasses.dataclass
class TaskRecord:
    """What the SDK's task store does not keep: history, artifacts, metadata and the job."""

    messages: list[Message]
    artifacts: list[Artifact] = dataclasses.field(default_factory=list)
    metadata: Optional[dict[str, Any]] = None
    status_message: Optional[str] = None
    job: Optional[asyncio.Task] = None
    followup: Optional[asyncio.Queue] = None


def _text_of(message: Message) -> str:
    return "\n".join(p.content for p in message.parts if isinstance(p, TextPart))


def _data_of(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for part in message.parts:
        if isinstance(part, DataPart):
            data.update(part.content)
    return data


def _assistant(text: str) -> Message:
    return Message(role="assistant", parts=[TextPart(content=text)])


class EchoAgent(BaseA2AAgent):
    """Echoes the user's text as an artifact after a controllable amount of work."""

    def __init__(self, task_store: BaseTaskStore) -> None:
        super().__init__(agent_metadata={"name": "agentvault-sdk-echo"})
        # The SAME store is handed to create_a2a_router: the router checks it on sendSubscribe.
        self.task_store = task_store
        self.records: dict[str, TaskRecord] = {}

    # -- helpers -----------------------------------------------------------------------------
    async def _context(self, task_id: str):
        ctx = await self.task_store.get_task(task_id)
        if ctx is None or task_id not in self.records:
            raise TaskNotFoundError(task_id=task_id)
        return ctx

    async def _set_state(self, task_id: str, state: TaskState, message: Optional[str] = None) -> None:
        # The store's update_task_state() notifies without a message; the SDK lets an agent use its
        # TaskContext and notify_status_update() directly to attach one (e.g. a failure reason).
        ctx = await self._context(task_id)
        ctx.update_state(state)  # validates the transition (InvalidStateTransitionError)
        self.records[task_id].status_message = message
        await self.task_store.notify_status_update(task_id, state, message=message)

    async def _add_message(self, task_id: str, message: Message, notify: bool = True) -> None:
        self.records[task_id].messages.append(message)
        if notify:
            await self.task_store.notify_message_event(task_id, message)

    # -- A2A methods ---------------------------------------------------------------------------
    async def handle_task_send(self, task_id: Optional[str], message: Message) -> str:
        if task_id:
            ctx = await self._context(task_id)
            record = self.records[task_id]
            state = TaskState(ctx.current_state)
            if state in TERMINAL_STATES:
                raise AgentProcessingError(f"Task {task_id} is {state.value} and accepts no more messages")
            await self._add_message(task_id, message, notify=False)
            if state == TaskState.INPUT_REQUIRED and record.followup is not None:
                await self._set_state(task_id, TaskState.WORKING)
                record.followup.put_nowait(message)
            return task_id

        task_id = f"sdk-{uuid.uuid4().hex[:8]}"
        await self.task_store.create_task(task_id)
        record = TaskRecord(messages=[message], followup=asyncio.Queue())
        self.records[task_id] = record
        opts = JobOptions.from_text(_text_of(message))
        record.job = asyncio.create_task(self._run(task_id, message, opts), name=f"job-{task_id}")
        logger.info("task %s started: %s", task_id, opts)
        return task_id

    async def handle_task_get(self, task_id: str) -> Task:
        ctx = await self._context(task_id)
        record = self.records[task_id]
        return Task(
            id=task_id,
            state=TaskState(ctx.current_state),
            createdAt=ctx.created_at,
            updatedAt=ctx.updated_at,
            messages=list(record.messages),
            artifacts=list(record.artifacts),
            metadata=record.metadata,
        )

    async def handle_task_cancel(self, task_id: str) -> bool:
        ctx = await self._context(task_id)
        if TaskState(ctx.current_state) in TERMINAL_STATES:
            return False
        job = self.records[task_id].job
        if job is not None and not job.done():
            job.cancel()
            await asyncio.wait({job}, timeout=5.0)
        if TaskState(ctx.current_state) in TERMINAL_STATES:  # finished while being stopped
            return False
        await self._set_state(task_id, TaskState.CANCELED)
        logger.info("task %s canceled", task_id)
        return True

    async def handle_subscribe_request(self, task_id: str) -> AsyncGenerator[Any, None]:
        queue: asyncio.Queue = asyncio.Queue()
        await self.task_store.add_listener(task_id, queue)
        try:
            ctx = await self._context(task_id)
            state = TaskState(ctx.current_state)
            if state in TERMINAL_STATES:
                # Nothing is replayed; a late subscriber learns the outcome and the stream ends.
                yield TaskStatusUpdateEvent(
                    task_id=task_id,
                    state=state,
                    timestamp=ctx.updated_at,
                    message=self.records[task_id].status_message,
                )
                return
            while True:
                event = await queue.get()
                yield event
                if isinstance(event, TaskStatusUpdateEvent) and event.state in TERMINAL_STATES:
                    return
        finally:
            await self.task_store.remove_listener(task_id, queue)

    # -- the background job ------------------------------------------------------------------
    async def _run(self, task_id: str, message: Message, opts: JobOptions) -> None:
        record = self.records[task_id]
        try:
            await asyncio.sleep(opts.delay)
            await self._set_state(task_id, TaskState.WORKING)
            await asyncio.sleep(opts.sleep / 2)
            await self._add_message(task_id, _assistant("half way"))
            if opts.input_required:
                await self._add_message(task_id, _assistant(INPUT_PROMPT))
                await self._set_state(task_id, TaskState.INPUT_REQUIRED, message=INPUT_PROMPT)
                assert record.followup is not None
                message = await record.followup.get()  # handle_task_send moved the task to WORKING
            await asyncio.sleep(opts.sleep / 2)
            if opts.fail:
                record.metadata = {"error": FAIL_REASON}
                await self._add_message(task_id, _assistant(FAIL_REASON), notify=False)
                await self._set_state(task_id, TaskState.FAILED, message=FAIL_REASON)
                logger.info("task %s failed on purpose", task_id)
                return
            content: dict[str, Any] = {"answer": _text_of(message)}
            if data := _data_of(message):
                content["data"] = data
            artifact = Artifact(id=f"{task_id}-result", type="result", content=content, mediaType="application/json")
            record.artifacts.append(artifact)
            await self.task_store.notify_artifact_event(task_id, artifact)
            await self._set_state(task_id, TaskState.COMPLETED)
            logger.info("task %s completed", task_id)
        except asyncio.CancelledError:
            logger.info("task %s: job cancelled", task_id)
            raise
        except Exception as exc:  # the agent itself broke: report it as a task failure
            logger.exception("task %s: job crashed", task_id)
            reason = f"agent error: {type(exc).__name__}: {exc}"
            record.metadata = {"error": reason}
            ctx = await self.task_store.get_task(task_id)
            if ctx is not None and TaskState(ctx.current_state) not in TERMINAL_STATES:
                await self._set_state(task_id, TaskState.FAILED, message=reason)


def build_card(port: int, public_host: str, api_key: Optional[str]) -> dict[str, Any]:
    """The agent card, validated by the AgentVault model (which rejects http://127.0.0.1 URLs)."""
    auth = (
        {"scheme": "apiKey", "description": "send the key in the X-Api-Key header", "service_identifier": "sdk-echo"}
        if api_key
        else {"scheme": "none"}
    )
    card = {
        "schemaVersion": "1.0",
        "humanReadableId": "tests/agentvault-sdk-echo",
        "agentVersion": "0.1.0",
        "name": "AgentVault SDK echo agent",
        "description": "Integration-test agent on agentvault-server-sdk 0.1.1: echoes its input as an artifact.",
        "url": f"http://{public_host}:{port}/a2a/",
        "provider": {"name": "airflow-agentvault tests"},
        "capabilities": {"a2aVersion": "1.0", "supportedMessageParts": ["text", "data"]},
        "authSchemes": [auth],
        "skills": [{"id": "echo", "name": "Echo", "description": "Returns the input text as {'answer': ...}."}],
        "tags": ["test", "echo"],
    }
    return AgentCard.model_validate(card).model_dump(mode="json", by_alias=True, exclude_none=True)


def create_app(port: int, public_host: str = "localhost", api_key: Optional[str] = None,
               error_handlers: bool = True) -> FastAPI:
    task_store = InMemoryTaskStore()
    agent = EchoAgent(task_store)
    card = build_card(port, public_host, api_key)

    app = FastAPI(title="AgentVault SDK echo agent")
    dependencies = []
    if api_key:
        async def require_api_key(request: Request) -> None:
            if request.headers.get("X-Api-Key") != api_key:
                raise HTTPException(status_code=401, detail="bad api key")

        dependencies.append(Depends(require_api_key))

    router = create_a2a_router(agent, task_store=task_store)
    app.include_router(router, prefix="/a2a", dependencies=dependencies)

    if error_handlers:
        # The SDK ships these handlers but leaves registering them to the application.
        app.add_exception_handler(TaskNotFoundError, task_not_found_handler)
        app.add_exception_handler(pydantic.ValidationError, validation_exception_handler)
        app.add_exception_handler(ValueError, validation_exception_handler)
        app.add_exception_handler(TypeError, validation_exception_handler)
        app.add_exception_handler(AgentServerError, agent_server_error_handler)
        app.add_exception_handler(Exception, generic_exception_handler)

    @app.get("/agent-card.json")
    async def agent_card() -> dict[str, Any]:
        return card

    app.state.agent = agent
    return app


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public-host", default="localhost",
                        help="host written in the card's url (the SDK's card model rejects 127.0.0.1)")
    parser.add_argument("--api-key", default=None, help="require this X-Api-Key on /a2a/ (401 without it)")
    parser.add_argument("--no-error-handlers", action="store_true",
                        help="do not register the SDK's exception handlers (unknown task -> HTTP 500)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.port, args.public_host, args.api_key, error_handlers=not args.no_error_handlers)
    # Loopback only. A short graceful-shutdown bound so open SSE streams cannot hold up SIGTERM.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level=args.log_level, timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
