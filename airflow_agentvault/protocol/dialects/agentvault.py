"""
AgentVault's JSON-RPC: dialect ``agentvault``.

Methods ``tasks/send``, ``tasks/get``, ``tasks/cancel`` and ``tasks/sendSubscribe``, all POSTed to the
endpoint. Errors come back as HTTP 200 JSON-RPC errors (``-32001`` "Task not found"), except
authentication (401/403) and agents without the SDK's handlers (500 for an unknown task). Stream events
are named (``task_status``, ``task_message``, ``task_artifact``, ``error``) and the agent closes the
stream after the terminal status. A subscription to a task that is not (yet) known is answered as
``200 application/json`` "Task not found": retried, since AgentVault agents may register tasks late.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.codec import Codec, StreamDecoder, UnknownEvent
from airflow_agentvault.protocol.exchange import Request, ServerEvent
from airflow_agentvault.protocol.jsonrpc import build_request, decode_response, error_from_object
from airflow_agentvault.protocol.models import (
    AgentCard,
    CancelResult,
    Message,
    SendResult,
    Task,
    TaskArtifactEvent,
    TaskEvent,
    TaskMessageEvent,
    TaskStatusEvent,
    model_from_json,
    parse_model,
)

DIALECT = "agentvault"
SEND, GET, CANCEL, SUBSCRIBE = "tasks/send", "tasks/get", "tasks/cancel", "tasks/sendSubscribe"

EVENT_TYPES: dict[str, type] = {
    "task_status": TaskStatusEvent,
    "task_message": TaskMessageEvent,
    "task_artifact": TaskArtifactEvent,
}

#: Methods whose HTTP 500 most likely means "task unknown" on an agent without the SDK's handlers.
TASK_METHODS = frozenset({GET, CANCEL, SUBSCRIBE})


class AgentVaultStreamDecoder(StreamDecoder):
    """Named events; ``error`` is raised as the typed error it carries, other unknown names are skipped."""

    def __init__(self, request: Request) -> None:
        self.where = request.where

    def feed(self, event: ServerEvent) -> list[TaskEvent]:
        name = event.event or "message"
        model = EVENT_TYPES.get(name)
        if model is not None:
            parsed = model_from_json(model, event.data)  # the common case in one pass
            if parsed is not None:
                return [parsed]
        elif name != "error":
            raise UnknownEvent(f"event type '{name}'")
        try:
            payload = json.loads(event.data)
        except ValueError as exc:
            raise errors.ProtocolViolationError(f"event '{name}' carries malformed JSON ({exc})",
                                                **self.where) from None
        if model is None:
            raise error_from_object(_error_object(payload), **self.where)
        return [parse_model(model, payload, **self.where)]


def _error_object(payload: Any) -> Any:
    """AgentVault sends ``{"error": code, "message"}`` or ``{"error": {code, message}}`` in error events."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return payload["error"]
    if isinstance(payload, dict) and "error" in payload:
        return {"code": payload.get("error"), "message": payload.get("message")}
    return payload


class AgentVaultCodec(Codec):
    """AgentVault JSON-RPC requests and decoding."""

    dialect = DIALECT
    not_found_hint = ("check that the connection points at the agent's JSON-RPC endpoint (AgentVault agents serve "
                      "it at /a2a/), or set the connection's dialect to auto")
    subscribe_not_found_may_mean_finished = False

    def _request(self, method: str, endpoint: str, params: dict[str, Any], task_id: str | None) -> Request:
        return Request(method, "POST", endpoint, endpoint, build_request(method, params), {}, task_id,
                       starts_task=method == SEND)

    def send_request(self, endpoint: str, message: Message, task_id: str | None,
                     context_id: str | None = None) -> Request:  # the server chooses ids; no conversations
        params: dict[str, Any] = {"message": message.to_wire()}
        if task_id:
            params["id"] = task_id
        return self._request(SEND, endpoint, params, task_id)

    def get_request(self, endpoint: str, task_id: str) -> Request:
        return self._request(GET, endpoint, {"id": task_id}, task_id)

    def cancel_request(self, endpoint: str, task_id: str) -> Request:
        return self._request(CANCEL, endpoint, {"id": task_id}, task_id)

    def subscribe_request(self, endpoint: str, task_id: str) -> Request:
        return self._request(SUBSCRIBE, endpoint, {"id": task_id}, task_id)

    def answer(self, request: Request, status: int, content_type: str | None, body: bytes, *,
               subscribing: bool = False) -> Any:
        if status == 500 and request.op in TASK_METHODS:
            raise errors.TaskNotFoundError(
                "agent answered HTTP 500; agents without the SDK's error handlers answer this for unknown tasks",
                **request.where,
            )
        return decode_response(status, content_type, body, hint=self.not_found_hint, **request.where)

    def send_result(self, request: Request, payload: Any) -> str:
        return parse_model(SendResult, payload, **request.where).id

    def task_result(self, request: Request, payload: Any) -> Task:
        return parse_model(Task, payload, **request.where)

    def cancel_result(self, request: Request, payload: Any) -> CancelResult:
        return parse_model(CancelResult, payload, **request.where)

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return AgentVaultStreamDecoder(request)

    def card(self, raw: dict[str, Any], card_url: str) -> AgentCard:
        return parse_model(AgentCard, raw, agent_url=card_url, method="GET agent card")
