"""
The codec interface: one dialect's wire format as pure functions, no I/O.

A codec turns an intention (send, get, cancel, subscribe, read the card) into a
:class:`~airflow_agentvault.protocol.exchange.Request` and turns what came back (a plain answer, or one
SSE event at a time through its :class:`StreamDecoder`) into our models, a skip, or a typed error.
:mod:`operations` drives any codec the same way, so dialects differ only in data and decoding.
"""

from __future__ import annotations

from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.exchange import CARD, DEFAULT_MAX_ANSWER_BYTES, Request, ServerEvent
from airflow_agentvault.protocol.models import AgentCard, CancelResult, Message, Task, TaskEvent


class UnknownEvent(Exception):
    """A stream event of a type or shape this client does not know: skipped, never an error (SSE and A2A say so)."""


class StreamDecoder:
    """Turns one stream's events into ours; keeps per-stream state (artifact chunks)."""

    #: The most one artifact assembled from chunks may hold (the subscription sets the connection's
    #: ``max_answer_bytes``): beyond it :class:`~errors.EventTooLargeError`, and the task is read with ``get``.
    max_bytes: int = DEFAULT_MAX_ANSWER_BYTES

    def feed(self, event: ServerEvent) -> list[TaskEvent]:  # pragma: no cover - interface
        """Our events, or raise :class:`UnknownEvent`, a typed error the event carries, or a damage error."""
        raise NotImplementedError


class Codec:
    """The wire format of one dialect. Subclasses implement every request and reading method."""

    dialect = ""
    #: The headers of every request of this dialect (A2A 1.0: ``A2A-Version``).
    headers: dict[str, str] = {}
    #: What to check when the agent answers HTTP 404 (a wrong URL, not an unknown task).
    not_found_hint = "check the connection's URL"
    #: A "Task not found" answer to a subscription may mean "no stream for a finished task" (A2A SDKs).
    subscribe_not_found_may_mean_finished = True

    def send_request(self, endpoint: str, message: Message, task_id: str | None,
                     context_id: str | None = None) -> Request:
        """``context_id``: a conversation id chosen by the caller, where the dialect lets the client choose."""
        raise NotImplementedError

    def list_request(self, endpoint: str, context_id: str) -> Request | None:
        """The request listing the tasks of a conversation, or None where the dialect cannot list them."""
        return None

    def list_result(self, request: Request, payload: Any) -> list[Task]:
        raise NotImplementedError

    def get_request(self, endpoint: str, task_id: str) -> Request:
        raise NotImplementedError

    def cancel_request(self, endpoint: str, task_id: str) -> Request:
        raise NotImplementedError

    def subscribe_request(self, endpoint: str, task_id: str) -> Request:
        raise NotImplementedError

    def push_register_request(self, endpoint: str, task_id: str, config_id: str, url: str,
                              token: str) -> Request | None:
        """The request asking the agent to POST to ``url`` (with ``token``) when the task changes; None: no push."""
        return None

    def push_delete_request(self, endpoint: str, task_id: str, config_id: str) -> Request | None:
        """The request removing that push config again (None where the dialect has no push)."""
        return None

    def card_request(self, card_url: str) -> Request:
        return Request(CARD, "GET", card_url, card_url, headers=dict(self.headers))

    def answer(self, request: Request, status: int, content_type: str | None, body: bytes, *,
               subscribing: bool = False) -> Any:
        """The payload of a plain answer, or raise the typed error it carries."""
        raise NotImplementedError

    def send_result(self, request: Request, payload: Any) -> str:
        raise NotImplementedError

    def task_result(self, request: Request, payload: Any) -> Task:
        raise NotImplementedError

    def cancel_result(self, request: Request, payload: Any) -> CancelResult:
        task = self.task_result(request, payload)
        return CancelResult(success=True, message=f"task is {task.state.value}")

    def cancel_refused(self, request: Request, exc: errors.AgentVaultError) -> CancelResult | None:
        """A refusal that means "already ended", answered like AgentVault's ``success: false``; else None."""
        return None

    def stream_decoder(self, request: Request) -> StreamDecoder:
        raise NotImplementedError

    def card(self, raw: dict[str, Any], card_url: str) -> AgentCard:
        raise NotImplementedError
