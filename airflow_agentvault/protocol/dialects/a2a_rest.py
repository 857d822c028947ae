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
from urllib.parse import quote, urlencode

from airflow_agentvault.protocol.dialects.a2a_errors import decode_rest, rest_error
from airflow_agentvault.protocol.dialects.a2a_v10 import (
    HEADERS,
    SHAPE,
    V10StreamDecoder,
    push_config,
    send_params,
    send_result,
    task_from_wire,
)
from airflow_agentvault.protocol.dialects.base import A2ACodec, tasks_of
from airflow_agentvault.protocol.exchange import Request
from airflow_agentvault.protocol.models import Message, Task

DIALECT = "a2a-rest"


def _url(endpoint: str, path: str) -> str:
    return endpoint.rstrip("/") + path


def _task_path(task_id: str) -> str:
    return "/tasks/" + quote(task_id, safe="")


class RestCodec(A2ACodec):
    """A2A 1.0 HTTP+JSON requests and decoding."""

    dialect = DIALECT
    headers = HEADERS
    not_found_hint = ("check that the connection points at the agent's HTTP+JSON base URL (the card's HTTP+JSON "
                      "interface, e.g. .../rest), or give the agent's base URL with the dialect auto")

    def _request(self, op: str, http_method: str, endpoint: str, path: str, body: Any, task_id: str | None) -> Request:
        return Request(op, http_method, _url(endpoint, path), endpoint, body, dict(self.headers), task_id,
                       starts_task=path == "/message:send")

    def send_request(self, endpoint: str, message: Message, task_id: str | None,
                     context_id: str | None = None) -> Request:
        return self._request("POST /message:send", "POST", endpoint, "/message:send",
                             send_params(message, task_id, context_id), task_id)

    def list_request(self, endpoint: str, context_id: str) -> Request | None:
        return self._request("GET /tasks", "GET", endpoint, "/tasks?" + urlencode({"contextId": context_id,
                                                                                     "pageSize": 10}), None, None)

    def list_result(self, request: Request, payload: Any) -> list[Task]:
        return tasks_of(payload, SHAPE, request)

    def get_request(self, endpoint: str, task_id: str) -> Request:
        return self._request("GET /tasks/{id}", "GET", endpoint, _task_path(task_id), None, task_id)

    def cancel_request(self, endpoint: str, task_id: str) -> Request:
        return self._request("POST /tasks/{id}:cancel", "POST", endpoint, _task_path(task_id) + ":cancel", {}, task_id)

    def subscribe_request(self, endpoint: str, task_id: str) -> Request:
        return self._request("GET /tasks/{id}:subscribe", "GET", endpoint, _task_path(task_id) + ":subscribe", None,
                          task_id)

    def push_register_request(self, endpoint: str, task_id: str, config_id: str, url: str,
                              token: str) -> Request | None:
        return self._request("POST /tasks/{id}/pushNotificationConfigs", "POST", endpoint,
                             _task_path(task_id) + "/pushNotificationConfigs",
                             push_config(task_id, config_id, url, token), task_id)

    def push_delete_request(self, endpoint: str, task_id: str, config_id: str) -> Request | None:
        return self._request("DELETE /tasks/{id}/pushNotificationConfigs/{configId}", "DELETE", endpoint,
                             f"{_task_path(task_id)}/pushNotificationConfigs/{quote(config_id, safe='')}", None,
                             task_id)

    def answer(self, request: Request, status: int, content_type: str | None, body: bytes, *,
               subscribing: bool = False) -> Any:
        return decode_rest(status, content_type, body, subscribing=subscribing, hint=self.not_found_hint,
                           **request.where)

    def send_result(self, request: Request, payload: Any) -> str:
        return send_result(payload, **request.where)

    def task_result(self, request: Request, payload: Any) -> Task:
        return task_from_wire(payload, **request.where)

    def stream_decoder(self, request: Request) -> V10StreamDecoder:
        return V10StreamDecoder(
            request, enveloped=False, error=lambda obj, **where: rest_error(obj, None, subscribing=True, **where)
        )


