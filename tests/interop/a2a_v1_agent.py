"""A real A2A agent on ``a2a-sdk[http-server]==1.3.0`` (the ``dev`` group) for the interop matrix.

Runs as a subprocess of the tests, from the project's own venv (the SDK installs beside Airflow)::

    python tests/interop/a2a_v1_agent.py --port 8766

One task handler, three bindings, as a 1.x SDK deployment serving old and new clients would have:

* ``POST /``: JSON-RPC 1.0 (``SendMessage`` ..., header ``A2A-Version: 1.0``) and, on the same path,
  JSON-RPC 0.3 (``message/send`` ...) through the SDK's 0.3 compatibility adapter;
* ``/rest``: HTTP+JSON 1.0 (``POST /rest/message:send`` ...);
* ``GET /.well-known/agent-card.json``: the card listing all three in ``supportedInterfaces`` (the SDK
  merges the 0.3 fields ``url`` / ``protocolVersion`` / ``preferredTransport`` in for 0.3 clients).

The text of the user message steers each task (words anywhere in the text), as in the AgentVault SDK
test agent:

=====================  ========================================================================
``delay=<seconds>``    time in SUBMITTED before WORKING (default 0.05)
``sleep=<seconds>``    time WORKING (default 0.4); the status message is "working on it"
``chunks=<n>``         the artifact ``result`` comes in n chunks ``chunk-1 `` ... (default 1),
                       the first with ``append: false``, the rest ``append: true``, the last
                       ``lastChunk: true``
``fail``               FAILED half way, reason in the status message (FAIL_REASON)
``input_required``     INPUT_REQUIRED half way, question in the status message (INPUT_PROMPT);
                       a follow-up message to the task completes it, echoing the follow-up text
``ask=<n>``            asks n questions, one per round: INPUT_REQUIRED with "question k of n:
                       proceed?" and a data part ``{"options": ["yes", "no"]}``; each follow-up's
                       answer (its ``answer`` data, else its text) is recorded and the next asked;
                       after the n-th the task completes with "answers: <a1>; <a2> ..." (artifact
                       ``result`` and the status message)
``auth_required``      AUTH_REQUIRED half way (AUTH_PROMPT); a follow-up whose data part has
                       ``credential`` == "letmein" resumes it (then ``ask=`` or the normal work),
                       any other follow-up fails it (CREDENTIAL_REJECTED; the value is never echoed)
=====================  ========================================================================

``push=none``           push notifications are never sent for the task (an agent that never calls back)
``push=twice``          every push notification is sent twice (duplicates)
``push=lose_final``     the notification of the final state is never sent (a lost notification)
=====================  ========================================================================

The card offers push notifications (``capabilities.pushNotifications``): push configs are kept in
memory and notifications POSTed with the SDK's sender and the config's token.

``tasks/cancel`` of a running task cancels its job and the task becomes CANCELED.

``--sign-key <file>`` (a private JWK, EC P-256, with its ``kid``) signs the card with the SDK's own
``a2a.utils.signing`` (ES256), as a deployment that signs its card would: the provider must verify it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import re
from pathlib import Path

import httpx
import uvicorn
from a2a.helpers.proto_helpers import (
    get_data_parts,
    new_data_part,
    new_message,
    new_task_from_user_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    TaskUpdater,
)
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Message, Part, Task, TaskState
from starlette.applications import Starlette

logger = logging.getLogger("a2a_v1_test_agent")

DEFAULT_DELAY = 0.05
DEFAULT_SLEEP = 0.4
FAIL_REASON = "a2a agent failed on purpose"
INPUT_PROMPT = "need more input: send a follow-up message to this task"
WORKING_TEXT = "working on it"
AUTH_PROMPT = "need a credential: send a follow-up with a data part {credential: ...}"
CREDENTIAL_REJECTED = "credential rejected: it is not the one this agent expects"
CREDENTIAL = "letmein"
OPTIONS = ["yes", "no"]
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


@dataclasses.dataclass
class JobOptions:
    delay: float = DEFAULT_DELAY
    sleep: float = DEFAULT_SLEEP
    chunks: int = 1
    fail: bool = False
    input_required: bool = False
    ask: int = 0
    auth_required: bool = False

    @classmethod
    def from_text(cls, text: str) -> JobOptions:
        opts = cls()
        if m := re.search(r"\bdelay=" + _NUMBER, text):
            opts.delay = float(m.group(1))
        if m := re.search(r"\bsleep=" + _NUMBER, text):
            opts.sleep = float(m.group(1))
        if m := re.search(r"\bchunks=([0-9]+)", text):
            opts.chunks = max(1, int(m.group(1)))
        opts.fail = re.search(r"\bfail\b", text) is not None
        opts.input_required = re.search(r"\binput_required\b", text) is not None
        if m := re.search(r"\bask=([0-9]+)", text):
            opts.ask = int(m.group(1))
        opts.auth_required = re.search(r"\bauth_required\b", text) is not None
        return opts


@dataclasses.dataclass
class Conversation:
    """A task that asks (``ask=``, ``auth_required``): what it was told and what it was answered."""

    opts: JobOptions
    answers: list[str] = dataclasses.field(default_factory=list)
    authorised: bool = False
    waiting_for: str = ""  # "credential", "answer", or "" when not waiting


#: How each task's push notifications misbehave (``push=`` in its text), by task id.
PUSH_FAULTS: dict[str, str] = {}
FINAL_STATES = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}


class SteeredPushSender(BasePushNotificationSender):
    """The SDK's sender, but a task's text may make it stay silent, repeat itself or lose the final notification."""

    async def send_notification(self, task_id, event) -> None:  # type: ignore[no-untyped-def]
        fault = PUSH_FAULTS.get(task_id, "")
        if fault == "none":
            return
        if fault == "lose_final":
            status = getattr(event, "status", None)
            if status is not None and TaskState.Name(status.state) in FINAL_STATES:
                return
        for _ in range(2 if fault == "twice" else 1):
            await super().send_notification(task_id, event)


def question(number: int, total: int) -> str:
    return f"question {number} of {total}: proceed?"


def agent_message(task: Task, text: str, *extra: Part) -> Message:
    return new_message([new_text_part(text), *extra], context_id=task.context_id, task_id=task.id)


def answer_of(message: Message, text: str) -> str:
    """A follow-up's answer: its data part's ``answer``, else its text."""
    for data in get_data_parts(message.parts):
        if isinstance(data, dict) and isinstance(data.get("answer"), str):
            return data["answer"]
    return text


def credential_of(message: Message) -> str | None:
    for data in get_data_parts(message.parts):
        if isinstance(data, dict) and isinstance(data.get("credential"), str):
            return data["credential"]
    return None


class SteeredExecutor(AgentExecutor):
    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}  # tasks that ask, by task id

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is None:  # a new task: make it exist first, so a non-blocking send answers at once
            task = new_task_from_user_message(context.message)
            if m := re.search(r"\bpush=(none|twice|lose_final)\b", context.get_user_input()):
                PUSH_FAULTS[task.id] = m.group(1)
            await event_queue.enqueue_event(task)
            resumed = False
        else:
            resumed = True
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        text = context.get_user_input()
        conversation = self.conversations.get(task.id)
        if resumed and conversation is not None and conversation.waiting_for:
            await self._resume(task, updater, conversation, context.message, text)
            return
        if resumed:  # the follow-up to an INPUT_REQUIRED task
            await updater.start_work(agent_message(task, WORKING_TEXT))
            await updater.add_artifact([new_text_part(f"answer: {text}")], artifact_id="result", name="result")
            await updater.complete()
            return
        opts = JobOptions.from_text(text)
        await asyncio.sleep(opts.delay)
        await updater.start_work(agent_message(task, WORKING_TEXT))
        await asyncio.sleep(opts.sleep / 2)
        if opts.auth_required or opts.ask:
            conversation = self.conversations[task.id] = Conversation(opts)
            await self._ask_next(task, updater, conversation)
            return
        if opts.input_required:
            await updater.requires_input(agent_message(task, INPUT_PROMPT))
            return
        if opts.fail:
            await updater.failed(agent_message(task, FAIL_REASON))
            return
        await self._work(updater, opts)

    async def _ask_next(self, task: Task, updater: TaskUpdater, conversation: Conversation) -> bool:
        """Stop for the credential or the next question, if one is due; ``False`` when none is."""
        opts = conversation.opts
        if opts.auth_required and not conversation.authorised:
            conversation.waiting_for = "credential"
            await updater.requires_auth(agent_message(task, AUTH_PROMPT))
            return True
        if len(conversation.answers) < opts.ask:
            conversation.waiting_for = "answer"
            number = len(conversation.answers) + 1
            await updater.requires_input(agent_message(task, question(number, opts.ask),
                                                       new_data_part({"options": OPTIONS})))
            return True
        return False

    async def _resume(self, task: Task, updater: TaskUpdater, conversation: Conversation, message: Message,
                      text: str) -> None:
        """A follow-up to a task that asked: check the credential or record the answer, then go on."""
        if conversation.waiting_for == "credential":
            if credential_of(message) != CREDENTIAL:
                self.conversations.pop(task.id, None)
                await updater.failed(agent_message(task, CREDENTIAL_REJECTED))
                return
            conversation.authorised = True
        else:
            conversation.answers.append(answer_of(message, text))
        conversation.waiting_for = ""
        await updater.start_work(agent_message(task, WORKING_TEXT))
        await asyncio.sleep(conversation.opts.sleep / 2)
        if await self._ask_next(task, updater, conversation):
            return
        self.conversations.pop(task.id, None)
        if conversation.answers:
            said = "answers: " + "; ".join(conversation.answers)
            await updater.add_artifact([new_text_part(said)], artifact_id="result", name="result")
            await updater.complete(agent_message(task, said))
            return
        await self._work(updater, conversation.opts)

    async def _work(self, updater: TaskUpdater, opts: JobOptions) -> None:
        """The normal work: the artifact ``result`` in ``chunks`` chunks, then COMPLETED."""
        for i in range(1, opts.chunks + 1):
            await updater.add_artifact(
                [new_text_part(f"chunk-{i} ")], artifact_id="result", name="result" if i == 1 else None,
                append=i > 1, last_chunk=i == opts.chunks,
            )
            await asyncio.sleep(opts.sleep / 2 / opts.chunks)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        await TaskUpdater(event_queue, context.task_id, task.context_id if task else context.context_id).cancel()


def build_card(base_url: str) -> AgentCard:
    return AgentCard(
        name="a2a-sdk 1.3.0 interop agent",
        description="Steered by its input text (sleep=, delay=, chunks=, fail, input_required, ask=, "
                    "auth_required).",
        version="0.1.0",
        supported_interfaces=[
            AgentInterface(url=f"{base_url}/", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=f"{base_url}/rest", protocol_binding="HTTP+JSON", protocol_version="1.0"),
            AgentInterface(url=f"{base_url}/", protocol_binding="JSONRPC", protocol_version="0.3"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="steered echo", tags=["test"])],
    )


def signed_by(card: AgentCard, key_file: str) -> AgentCard:
    """The card signed by the SDK's signer with the private JWK in ``key_file``."""
    from a2a.utils.signing import create_agent_card_signer
    from jwt import PyJWK

    jwk = json.loads(Path(key_file).read_text())
    signer = create_agent_card_signer(PyJWK(jwk, algorithm="ES256"),
                                      {"kid": jwk["kid"], "alg": "ES256", "typ": "JOSE"})  # type: ignore[typeddict-item]
    return signer(card)


def create_app(port: int, sign_key: str | None = None, public_url: str | None = None) -> Starlette:
    """``public_url``: the base URL the card names (a proxy in front of the agent), else the agent's own."""
    card = build_card((public_url or f"http://127.0.0.1:{port}").rstrip("/"))
    if sign_key:
        card = signed_by(card, sign_key)
    configs = InMemoryPushNotificationConfigStore()
    handler = DefaultRequestHandler(agent_executor=SteeredExecutor(), task_store=InMemoryTaskStore(), agent_card=card,
                                    push_config_store=configs,
                                    push_sender=SteeredPushSender(httpx.AsyncClient(timeout=10), configs))
    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True),
        *create_rest_routes(handler, path_prefix="/rest"),
    ]
    return Starlette(routes=routes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--sign-key", help="a private JWK file: the card is signed with it (ES256)")
    parser.add_argument("--public-url", help="base URL the agent card names (default: the agent's own)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Loopback only; a short graceful-shutdown bound so open streams cannot hold up SIGTERM.
    uvicorn.run(create_app(args.port, args.sign_key, args.public_url), host="127.0.0.1", port=args.port,
                log_level=args.log_level,
                timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
