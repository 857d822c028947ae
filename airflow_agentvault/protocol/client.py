"""
Synchronous AgentVault client over requests, with SSE framing by sseclient-py.

Every call has explicit connect and read timeouts; the read timeout of a subscription is a parameter,
because an agent may stay silent for minutes while its LLM thinks. Wire details (JSON-RPC framing,
error mapping, event decoding) live in :mod:`jsonrpc` and :mod:`events`, shared with the async client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
import sseclient

from airflow_agentvault.protocol import calls, errors
from airflow_agentvault.protocol.auth import NO_AUTH, Auth
from airflow_agentvault.protocol.events import decode_event
from airflow_agentvault.protocol.jsonrpc import (
    build_request,
    decode_response,
)
from airflow_agentvault.protocol.models import (
    AgentCard,
    CancelResult,
    Message,
    Task,
    TaskEvent,
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
        result = self._call(calls.SEND, calls.send_params(message, task_id), task_id=task_id)
        return calls.read_send(result, **calls.where(self.rpc_url, calls.SEND, task_id))

    def get(self, task_id: str) -> Task:
        result = self._call(calls.GET, {"id": task_id}, task_id=task_id)
        return calls.read_task(result, **calls.where(self.rpc_url, calls.GET, task_id))

    def cancel(self, task_id: str) -> CancelResult:
        result = self._call(calls.CANCEL, {"id": task_id}, task_id=task_id)
        return calls.read_cancel(result, **calls.where(self.rpc_url, calls.CANCEL, task_id))

    def fetch_card(self, card_url: str) -> AgentCard:
        at = calls.where(card_url, calls.CARD)
        response = self._request("GET", card_url, where=at)
        return calls.read_card(response.status_code, response.json, **at)

    # -- streaming ---------------------------------------------------------------------------

    def subscribe(self, task_id: str, *, read_timeout: float | None = None) -> Iterator[TaskEvent]:
        """
        Yield the task's events until a state that ends the wait (terminal or input-required).

        A JSON answer to the subscription is an error (AgentVault answers "Task not found" as
        ``200 application/json``), never an empty stream; a stream that ends early raises
        :class:`StreamDisconnectedError`.
        """
        at = calls.where(self.rpc_url, calls.SUBSCRIBE, task_id)
        response = self._request(
            "POST", self.rpc_url, where=at, json=build_request(calls.SUBSCRIBE, {"id": task_id}),
            headers=calls.STREAM_HEADERS, stream=True, read_timeout=read_timeout,
        )
        with response:
            content_type = response.headers.get("Content-Type")
            if calls.is_error_answer(response.status_code, content_type):
                calls.refuse_answer(response.status_code, content_type, response.content, **at)
            calls.require_stream(content_type, **at)
            tally = calls.StreamTally(**at)
            try:
                for sse in sseclient.SSEClient(response).events():
                    if not sse.data and not sse.event:
                        continue
                    event = decode_event(sse.event, sse.data, **at)
                    yield event
                    if tally.finished_by(event):
                        return
            except requests.RequestException as exc:
                raise tally.broke(exc) from None
            raise tally.ended()

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
            for _ in range(calls.MAX_REDIRECTS + 1):
                response = self.session.request(
                    http_method, url, headers=all_headers, timeout=timeout, verify=self.verify,
                    allow_redirects=False, **kwargs,
                )
                target = calls.redirect_target(
                    http_method, url, response.status_code, response.headers.get("Location"), **where
                )
                if target is None:
                    return response
                response.close()
                url = target
            return response
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
