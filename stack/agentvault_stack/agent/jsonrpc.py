"""The reference agent's JSON-RPC wire: error codes, inbound params validated as the SDK does, answers and SSE blocks.

Why it is its own module: the routes (``app.py``) decide what to answer; this says how it looks on the
wire, byte for byte as ``agentvault-server-sdk`` (FastAPI/Starlette) writes it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from agentvault_stack.agent.behaviour import OVERRIDE_KEY

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001


# -- inbound validation (the SDK validates params with pydantic; so do we) ------------------


class _TextPart(BaseModel):
    type: Literal["text"]
    content: str


class _DataPart(BaseModel):
    type: Literal["data"]
    content: dict[str, Any]
    mediaType: str = "application/json"


class _FilePart(BaseModel):
    type: Literal["file"]
    url: str
    mediaType: str | None = None
    filename: str | None = None


class Message(BaseModel):
    """An incoming message; dumping it gives the stored wire form."""

    role: Literal["user", "assistant", "system", "tool"]
    parts: list[Annotated[_TextPart | _DataPart | _FilePart, Field(discriminator="type")]] = Field(
        min_length=1
    )
    metadata: dict[str, Any] | None = None


class TaskSendParams(BaseModel):
    message: Message
    id: str | None = None
    webhookUrl: str | None = None


class TaskGetParams(BaseModel):
    id: str


class TaskCancelParams(BaseModel):
    id: str


class TaskSubscribeParams(BaseModel):
    id: str


# -- wire helpers ---------------------------------------------------------------------------


class RpcError(Exception):
    """A JSON-RPC error to answer with HTTP 200."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def dumps(payload: Any) -> str:
    """Compact JSON, as FastAPI/Starlette write it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(payload), status_code=status_code, headers=headers, media_type="application/json")


def rpc_result(request_id: Any, result: Any) -> Response:
    return json_response({"jsonrpc": "2.0", "result": result, "id": request_id})


def rpc_error(request_id: Any, code: int, message: str) -> Response:
    return json_response({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id})


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    """One SSE block: ``event:`` and ``data:`` lines and a blank line, no ``id:``."""
    return f"event: {event}\ndata: {dumps(data)}\n\n".encode()


def params_of(model: type[BaseModel], params: Any) -> Any:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise RpcError(INVALID_PARAMS, f"Invalid parameters: {exc}") from exc


def overrides_of(message: Message) -> dict[str, Any] | None:
    overrides = (message.metadata or {}).get(OVERRIDE_KEY)
    if overrides is not None and not isinstance(overrides, dict):
        raise RpcError(INVALID_PARAMS, f"Invalid parameters: metadata.{OVERRIDE_KEY} must be an object")
    return overrides
