"""
Synchronous AgentVault client over requests, with SSE framing by sseclient-py.

Every call has explicit connect and read timeouts; the read timeout of a subscription is a parameter,
because an agent may stay silent for minutes while its LLM thinks. Wire details (JSON-RPC framing,
error mapping, event decoding) live in :mod:`jsonrpc` and :mod:`events`, shared with the async client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import requests
import sseclient

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.auth import NO_AUTH, Auth
from airflow_agentvault.protocol.events import decode_event
from airflow_agentvault.protocol.jsonrpc import (
    build_request,
    decode_response,
    is_event_stream,
    is_json,
    raise_for_http_status,
)
from airflow_agentvault.protocol.models import (
    AgentCard,
    CancelResult,
    Message,
    SendResult,
    Task,
    TaskEvent,
    TaskStatusEvent,
    parse_model,
)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0


class AgentVaultClient:
    """
    Talks AgentVault's JSON-RPC to one agent endpoint (the card's ``url``, e.g. ``http://host/a2a/``).

    :param rpc_url: the JSON-RPC endpoint.
    :param auth: credentials as headers (see :mod:`auth`).
    :param verify: TLS verification: True, False, or a CA bundle path.
    :param connect_timeout: seconds to establish a connection.
    :param read_timeout: seconds to wait for bytes of a plain call's answer.
    """

    def __init__(
        self,
        rpc_url: str,
        *,
        auth: Auth = NO_AUTH,
        verify: bool | str = True,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self.auth = auth
        self.verify = verify
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = session or requests.Session()

    # -- plain calls -------------------------------------------------------------------------

    def send(self, message: Message, *, task_id: str | None = None) -> str:
        """Start a task (or send a follow-up message to ``task_id``); return the task id."""
        params: dict[str, Any] = {"message": message.to_wire()}
        if task_id:
            params["id"] = task_id
        result = self._call("tasks/send", params, task_id=task_id)
        return parse_model(SendResult, result, agent_url=self.rpc_url, method="tasks/send", task_id=task_id).id

    def get(self, task_id: str) -> Task:
        result = self._call("tasks/get", {"id": task_id}, task_id=task_id)
        return parse_model(Task, result, agent_url=self.rpc_url, method="tasks/get", task_id=task_id)

    def cancel(self, task_id: str) -> CancelResult:
        result = self._call("tasks/cancel", {"id": task_id}, task_id=task_id)
        return parse_model(CancelResult, result, agent_url=self.rpc_url, method="tasks/cancel", task_id=task_id)

    def fetch_card(self, card_url: str) -> AgentCard:
        where = {"agent_url": card_url, "method": "GET agent card"}
        response = self._request("GET", card_url, where=where)
        raise_for_http_status(response.status_code, agent_url=card_url, method="GET agent card", task_id=None)
        try:
            data = response.json()
        except ValueError:
            raise errors.ProtocolViolationError("agent card is not valid JSON", **where) from None
        return parse_model(AgentCard, data, **where)

    # -- streaming ---------------------------------------------------------------------------

    def subscribe(self, task_id: str, *, read_timeout: float | None = None) -> Iterator[TaskEvent]:
        """
        Yield the task's events until a state that ends the wait (terminal or input-required).

        A JSON answer to the subscription is an error (AgentVault answers "Task not found" as
        ``200 application/json``), never an empty stream; a stream that ends early raises
        :class:`StreamDisconnectedError`.
        """
        method = "tasks/sendSubscribe"
        where = {"agent_url": self.rpc_url, "method": method, "task_id": task_id}
        response = self._request(
            "POST",
            self.rpc_url,
            where=where,
            json=build_request(method, {"id": task_id}),
            headers={"Accept": "text/event-stream"},
            stream=True,
            read_timeout=read_timeout,
        )
        with response:
            content_type = response.headers.get("Content-Type")
            if response.status_code >= 300 or is_json(content_type):
                result = decode_response(
                    response.status_code, content_type, response.content, **where
                )  # raises the error the body carries
                raise errors.ProtocolViolationError(
                    f"subscription answered a JSON result instead of a stream: {json.dumps(result)[:200]}", **where
                )
            if not is_event_stream(content_type):
                raise errors.ProtocolViolationError(
                    f"expected text/event-stream, got content type {content_type or 'none'!r}", **where
                )
            count = 0
            try:
                for sse in sseclient.SSEClient(response).events():
                    if not sse.data and not sse.event:
                        continue
                    event = decode_event(sse.event, sse.data, **where)
                    count += 1
                    yield event
                    if isinstance(event, TaskStatusEvent) and event.state.ends_wait:
                        return
            except requests.RequestException as exc:
                raise errors.StreamDisconnectedError(
                    f"stream broke after {count} events ({type(exc).__name__})", **where
                ) from None
            raise errors.StreamDisconnectedError(f"stream ended after {count} events without a terminal state", **where)

    # -- plumbing ----------------------------------------------------------------------------

    def _call(self, method: str, params: dict[str, Any], *, task_id: str | None) -> Any:
        where = {"agent_url": self.rpc_url, "method": method, "task_id": task_id}
        response = self._request("POST", self.rpc_url, where=where, json=build_request(method, params))
        return decode_response(response.status_code, response.headers.get("Content-Type"), response.content, **where)

    def _request(
        self,
        http_method: str,
        url: str,
        *,
        where: dict[str, Any],
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        all_headers = {**self.auth.headers(), **(headers or {})}
        timeout = (self.connect_timeout, read_timeout if read_timeout is not None else self.read_timeout)
        try:
            return self.session.request(
                http_method, url, headers=all_headers, timeout=timeout, verify=self.verify, **kwargs
            )
        except requests.ConnectTimeout:
            raise errors.AgentUnreachableError(f"cannot connect within {timeout[0]:g} s", **where) from None
        except requests.Timeout:
            raise errors.AgentUnreachableError(f"no answer within {timeout[1]:g} s", **where) from None
        except requests.ConnectionError as exc:
            raise errors.AgentUnreachableError(f"cannot connect ({_reason(exc)})", **where) from None
        except requests.RequestException as exc:
            raise errors.AgentUnreachableError(f"request failed ({type(exc).__name__})", **where) from None


def _reason(exc: Exception) -> str:
    """A short cause without the URL (the error already names it, redacted)."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "SSL", "certificate"):
        if marker in text:
            return marker
    return type(exc).__name__
