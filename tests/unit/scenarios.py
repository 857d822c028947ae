"""
One table of follow scenarios, played against the sync follower (requests-mock) and the async one (respx).

Each scenario scripts the agent's answers per JSON-RPC method (a queue; the last answer repeats) and
states the outcome both followers must reach: path, final state and metadata, or the error raised. A
fake clock advances only when a follower sleeps, so the waits are instant and ``waited_seconds`` is
exact. The adapters below turn a script into a requests-mock callback or a respx side effect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.follow import (
    PATH_ALREADY_FINISHED,
    PATH_POLLING,
    PATH_RESUBSCRIBE,
    PATH_STREAM,
)

from fakes import SSE_HEADERS, rpc_error, rpc_result, sse_body, task_json

RPC = "http://agent.test/a2a/"
EPOCH = 1_800_000_000.0

#: Numbers chosen so every wait is distinct: 0.5 s, then 1 s between subscriptions; 1 s between polls.
TIMING = {"sse_attempts": 3, "sse_retry_delay": 0.5, "sse_retry_backoff": 2.0, "poll_interval": 1.0,
          "read_timeout": 30.0, "overall_timeout": 60.0}


class FakeClock:
    """Epoch-like time that moves only when someone sleeps."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class RecordingLogger:
    """Collects the rendered log lines, as the Airflow task log would show them."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _record(self, level: str, msg: str, *args: Any) -> None:
        self.lines.append((level, msg % args if args else msg))

    def info(self, msg, *args, **_):
        self._record("info", msg, *args)

    def warning(self, msg, *args, **_):
        self._record("warning", msg, *args)

    def error(self, msg, *args, **_):
        self._record("error", msg, *args)

    def debug(self, msg, *args, **_):
        self._record("debug", msg, *args)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


# -- the agent's answers --------------------------------------------------------------------------

NOT_FOUND = rpc_error(-32001, "Task not found: t-1")


def status(state: str, message: str | None = None) -> tuple[str, dict[str, Any]]:
    return "task_status", {"taskId": "t-1", "state": state, "timestamp": "2026-11-24T06:12:53Z", "message": message}


def stream(*events: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"content": sse_body(*events), "headers": SSE_HEADERS}


SAYS_DONE = ("task_message", {"taskId": "t-1",
                              "message": {"role": "assistant", "parts": [{"type": "text", "content": "done"}]}})
ARTIFACT = ("task_artifact", {"taskId": "t-1",
                              "artifact": {"id": "t-1-result", "type": "result", "content": {"answer": 42}}})
FULL_STREAM = stream(status("WORKING"), SAYS_DONE, ARTIFACT, status("COMPLETED"))
CUT_STREAM = stream(status("WORKING"), SAYS_DONE)  # ends without a terminal state: a disconnect

#: Faults of the stream or the transport, not of the task: none may cost the result.
UNKNOWN_EVENT = ("proxy_heartbeat", {"x": 1})
DAMAGED_STREAM = {"content": sse_body(status("WORKING")) + b'event: task_artifact\ndata: {"taskId": "t-1", "arti\n\n',
                  "headers": SSE_HEADERS}
MISLABELLED_STREAM = {"content": FULL_STREAM["content"], "headers": {"Content-Type": "application/json"}}
BUSY = {"status_code": 503, "content": b"busy", "headers": {"Content-Type": "text/plain", "Retry-After": "3"}}
UNREADABLE = {"content": b'{"jsonrpc": "2.0", "result": {"id": "t-1", "sta', "headers": {"Content-Type": "application/json"}}

WORKING = rpc_result(task_json("t-1", "WORKING"))
COMPLETED = rpc_result(task_json("t-1", "COMPLETED", agent_text="done",
                                 artifacts=[{"id": "t-1-result", "type": "result", "content": {"answer": 42}}]))


def meta(path: str, waited: float, events: int, attempts: int) -> dict[str, Any]:
    return {"delivered_by": path, "waited_seconds": waited, "events_seen": events, "sse_attempts": attempts}


@dataclass(frozen=True)
class Scenario:
    name: str
    replies: dict[str, list[dict[str, Any]]]
    path: str | None = None
    state: str | None = None
    metadata: dict[str, Any] | None = None
    status_message: str | None = None
    error: type[Exception] | None = None
    error_match: str | None = None
    methods: list[str] | None = None
    timing: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


SCENARIOS = [
    Scenario(
        "stream-completes",
        {"tasks/get": [WORKING, COMPLETED], "tasks/sendSubscribe": [FULL_STREAM]},
        path=PATH_STREAM, state="COMPLETED", metadata=meta(PATH_STREAM, 0.0, 4, 1),
        methods=["tasks/get", "tasks/sendSubscribe", "tasks/get"],
    ),
    Scenario(
        "not-found-then-stream",
        {"tasks/get": [NOT_FOUND, COMPLETED], "tasks/sendSubscribe": [NOT_FOUND, FULL_STREAM]},
        path=PATH_RESUBSCRIBE, state="COMPLETED", metadata=meta(PATH_RESUBSCRIBE, 0.5, 4, 2),
        methods=["tasks/get", "tasks/sendSubscribe", "tasks/sendSubscribe", "tasks/get"],
    ),
    Scenario(
        "disconnect-then-resubscribe",
        {"tasks/get": [WORKING, COMPLETED], "tasks/sendSubscribe": [CUT_STREAM, FULL_STREAM]},
        path=PATH_RESUBSCRIBE, state="COMPLETED", metadata=meta(PATH_RESUBSCRIBE, 0.5, 6, 2),
        methods=["tasks/get", "tasks/sendSubscribe", "tasks/sendSubscribe", "tasks/get"],
    ),
    Scenario(
        "disconnects-then-polling",
        {"tasks/get": [WORKING, WORKING, COMPLETED], "tasks/sendSubscribe": [CUT_STREAM]},
        path=PATH_POLLING, state="COMPLETED", metadata=meta(PATH_POLLING, 2.5, 6, 3),
        methods=["tasks/get"] + ["tasks/sendSubscribe"] * 3 + ["tasks/get"] * 2,
    ),
    Scenario(
        "subscribe-never-found-then-polling",
        {"tasks/get": [WORKING, WORKING, COMPLETED], "tasks/sendSubscribe": [NOT_FOUND]},
        path=PATH_POLLING, state="COMPLETED", metadata=meta(PATH_POLLING, 2.5, 0, 3),
        methods=["tasks/get"] + ["tasks/sendSubscribe"] * 3 + ["tasks/get"] * 2,
    ),
    Scenario(
        "failed",
        {"tasks/get": [WORKING, rpc_result(task_json("t-1", "FAILED"))],
         "tasks/sendSubscribe": [stream(status("WORKING"), status("FAILED", "out of memory"))]},
        path=PATH_STREAM, state="FAILED", metadata=meta(PATH_STREAM, 0.0, 2, 1), status_message="out of memory",
    ),
    Scenario(
        "input-required",
        {"tasks/get": [WORKING, rpc_result(task_json("t-1", "INPUT_REQUIRED", agent_text="Which decade?"))],
         "tasks/sendSubscribe": [stream(status("INPUT_REQUIRED", "Which decade?"))]},
        path=PATH_STREAM, state="INPUT_REQUIRED", metadata=meta(PATH_STREAM, 0.0, 1, 1),
        status_message="Which decade?",
    ),
    Scenario(
        "canceled",
        {"tasks/get": [WORKING, rpc_result(task_json("t-1", "CANCELED"))],
         "tasks/sendSubscribe": [stream(status("WORKING"), status("CANCELED"))]},
        path=PATH_STREAM, state="CANCELED", metadata=meta(PATH_STREAM, 0.0, 2, 1),
    ),
    Scenario(
        "already-finished",
        {"tasks/get": [COMPLETED]},
        path=PATH_ALREADY_FINISHED, state="COMPLETED", metadata=meta(PATH_ALREADY_FINISHED, 0.0, 0, 0),
        methods=["tasks/get"],
    ),
    Scenario(
        "stream-ahead-of-tasks-get",
        {"tasks/get": [WORKING, WORKING, WORKING, COMPLETED], "tasks/sendSubscribe": [FULL_STREAM]},
        path=PATH_STREAM, state="COMPLETED", metadata=meta(PATH_STREAM, 1.0, 4, 1),
        methods=["tasks/get", "tasks/sendSubscribe", "tasks/get", "tasks/get", "tasks/get"],
    ),
    Scenario(
        "overall-timeout",
        {"tasks/get": [WORKING], "tasks/sendSubscribe": [NOT_FOUND]},
        error=errors.WaitTimeoutError, error_match="overall timeout of 5 s",
        timing={"overall_timeout": 5.0, "sse_attempts": 1},
    ),
    Scenario(
        "unknown-event-is-skipped",
        {"tasks/get": [WORKING, COMPLETED],
         "tasks/sendSubscribe": [stream(status("WORKING"), UNKNOWN_EVENT, SAYS_DONE, ARTIFACT, status("COMPLETED"))]},
        path=PATH_STREAM, state="COMPLETED", metadata=meta(PATH_STREAM, 0.0, 4, 1),
    ),
    Scenario(
        "damaged-event-ends-the-stream-then-resubscribe",
        {"tasks/get": [WORKING, COMPLETED], "tasks/sendSubscribe": [DAMAGED_STREAM, FULL_STREAM]},
        path=PATH_RESUBSCRIBE, state="COMPLETED", metadata=meta(PATH_RESUBSCRIBE, 0.5, 5, 2),
    ),
    Scenario(
        "stream-labelled-json-is-a-disconnect-then-polling",
        {"tasks/get": [WORKING, COMPLETED], "tasks/sendSubscribe": [MISLABELLED_STREAM]},
        path=PATH_POLLING, state="COMPLETED", metadata=meta(PATH_POLLING, 1.5, 0, 3),
        methods=["tasks/get"] + ["tasks/sendSubscribe"] * 3 + ["tasks/get"],
    ),
    Scenario(
        "retry-after-is-honoured",
        {"tasks/get": [WORKING, COMPLETED], "tasks/sendSubscribe": [BUSY, FULL_STREAM]},
        path=PATH_RESUBSCRIBE, state="COMPLETED", metadata=meta(PATH_RESUBSCRIBE, 3.0, 4, 2),
    ),
    Scenario(
        "unreadable-gets-are-read-again",
        {"tasks/get": [WORKING, UNREADABLE, UNREADABLE, COMPLETED], "tasks/sendSubscribe": [NOT_FOUND]},
        path=PATH_POLLING, state="COMPLETED", metadata=meta(PATH_POLLING, 2.0, 0, 1),
        timing={"sse_attempts": 1},
    ),
    Scenario(
        "unreadable-gets-end-as-a-protocol-error",
        {"tasks/get": [WORKING, UNREADABLE], "tasks/sendSubscribe": [NOT_FOUND]},
        error=errors.ProtocolViolationError, error_match="malformed JSON", timing={"sse_attempts": 1},
    ),
    Scenario(
        "forgotten-task-is-lost-after-the-grace",
        {"tasks/get": [WORKING, NOT_FOUND], "tasks/sendSubscribe": [NOT_FOUND]},
        error=errors.TaskLostError, error_match="no longer knows task t-1", timing={"lost_grace": 4.0},
    ),
    Scenario(
        "not-authorised",
        {"tasks/get": [{"status_code": 401, "json": {"detail": "bad key"}}]},
        error=errors.NotAuthorizedError, methods=["tasks/get"],
    ),
]


# -- adapters -------------------------------------------------------------------------------------


class Script:
    """The scenario's answers, consumed per method in order (the last one repeats)."""

    def __init__(self, replies: dict[str, list[dict[str, Any]]]) -> None:
        self.queues = {method: list(answers) for method, answers in replies.items()}
        self.methods: list[str] = []

    def next(self, body: bytes) -> dict[str, Any]:
        method = json.loads(body)["method"]
        self.methods.append(method)
        queue = self.queues[method]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    @staticmethod
    def _content(answer: dict[str, Any]) -> bytes:
        return answer["content"] if "content" in answer else json.dumps(answer["json"]).encode()

    @staticmethod
    def _headers(answer: dict[str, Any]) -> dict[str, str]:
        return answer.get("headers", {"Content-Type": "application/json"})

    def requests_mock_callback(self):
        def respond(request, context):
            answer = self.next(request.body)
            context.status_code = answer.get("status_code", 200)
            context.headers = self._headers(answer)
            return self._content(answer)

        return respond

    def respx_side_effect(self):
        def respond(request: httpx.Request) -> httpx.Response:
            answer = self.next(request.content)
            return httpx.Response(answer.get("status_code", 200), content=self._content(answer),
                                  headers=self._headers(answer))

        return respond
