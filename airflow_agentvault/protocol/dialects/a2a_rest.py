"""
The official A2A protocol 1.0 over HTTP+JSON ("REST"): dialect ``a2a-rest``.

The connection's endpoint is the binding's base URL (the card's ``supportedInterfaces`` entry with
``protocolBinding: HTTP+JSON``, e.g. ``http://host/rest``). Operations: ``POST /message:send`` (with
``returnImmediately``), ``GET /tasks/{id}``, ``POST /tasks/{id}:cancel`` and ``GET /tasks/{id}:subscribe``,
each with ``A2A-Version: 1.0``. Bodies and stream events are the 1.0 objects of :mod:`a2a_v10` without a
JSON-RPC envelope, so their decoding is that module's. Errors are HTTP statuses with
``{"error": {code, status, message, details: [{"reason"}]}}``; the ``reason`` (``TASK_NOT_FOUND``,
``TASK_NOT_CANCELABLE``, ``UNSUPPORTED_OPERATION``, ``VERSION_NOT_SUPPORTED`` ...) decides the typed error
exactly as the JSON-RPC code does in the other dialects. A 404 without a reason is a wrong URL, not an
unknown task.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_agentvault.protocol.dialects.a2a_v10 import (
    HEADERS,
    V10StreamDecoder,
    send_params,
    send_result,
    task_from_wire,
)
from airflow_agentvault.protocol.dialects.base import (
    A2AClient,
    AsyncA2AClient,
    Call,
    Codec,
    decode_rest,
    rest_error,
)
from airflow_agentvault.protocol.models import Message, Task

DIALECT = "a2a-rest"


def _url(endpoint: str, path: str) -> str:
    return endpoint.rstrip("/") + path


def _task_path(task_id: str) -> str:
    return "/tasks/" + quote(task_id, safe="")


class RestCodec(Codec):
    """A2A 1.0 HTTP+JSON requests and decoding."""

    dialect = DIALECT

    def _call(self, op: str, http_method: str, endpoint: str, path: str, body: Any, task_id: str | None) -> Call:
        return Call(op, http_method, _url(endpoint, path), endpoint, body, dict(HEADERS), task_id)

    def send_call(self, endpoint: str, message: Message, task_id: str | None) -> Call:
        return self._call("POST /message:send", "POST", endpoint, "/message:send", send_params(message, task_id),
                          task_id)

    def get_call(self, endpoint: str, task_id: str) -> Call:
        return self._call("GET /tasks/{id}", "GET", endpoint, _task_path(task_id), None, task_id)

    def cancel_call(self, endpoint: str, task_id: str) -> Call:
        return self._call("POST /tasks/{id}:cancel", "POST", endpoint, _task_path(task_id) + ":cancel", {}, task_id)

    def subscribe_call(self, endpoint: str, task_id: str) -> Call:
        return self._call("GET /tasks/{id}:subscribe", "GET", endpoint, _task_path(task_id) + ":subscribe", None,
                          task_id)

    def answer(self, call: Call, status: int, content_type: str | None, body: bytes, *,
               subscribing: bool = False) -> Any:
        return decode_rest(status, content_type, body, subscribing=subscribing, **call.where)

    def send_result(self, call: Call, payload: Any) -> str:
        return send_result(payload, **call.where)

    def task_result(self, call: Call, payload: Any) -> Task:
        return task_from_wire(payload, **call.where)

    def stream_decoder(self, call: Call) -> V10StreamDecoder:
        return V10StreamDecoder(
            call, enveloped=False, error=lambda obj, **where: rest_error(obj, None, subscribing=True, **where)
        )


class A2ARestClient(A2AClient):
    """Synchronous client of the ``a2a-rest`` dialect."""

    codec = RestCodec()


class AsyncA2ARestClient(AsyncA2AClient):
    """Asynchronous client of the ``a2a-rest`` dialect."""

    codec = RestCodec()
