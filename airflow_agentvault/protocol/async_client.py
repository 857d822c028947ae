"""
Asynchronous AgentVault client over httpx, with SSE framing by httpx-sse: the triggers' client.

It is the sync :class:`~airflow_agentvault.protocol.client.AgentVaultClient` with awaited I/O and nothing
else: the same methods and answers, the same JSON-RPC framing and error mapping (:mod:`jsonrpc`), the
same event decoding (:mod:`events`) and model validation (:func:`models.parse_model`). Every call has
explicit connect and read timeouts, the subscription's read timeout is a parameter, and httpx failures
become :class:`AgentUnreachableError` whose message names neither credentials nor URL user-info.
Use it as ``async with AsyncAgentVaultClient(...) as client:`` so its connections are closed.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from typing import Any

import certifi
import httpx
from httpx_sse import EventSource

from airflow_agentvault.protocol import calls, errors
from airflow_agentvault.protocol.auth import NO_AUTH, Auth
from airflow_agentvault.protocol.client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, _reason
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


@functools.lru_cache(maxsize=16)
def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """
    One SSL context per TLS setting, shared by every async client of the process.

    Building one loads the whole CA store (about a megabyte and milliseconds each); a triggerer
    following a thousand streams would otherwise hold a thousand copies. ``True`` trusts certifi's
    bundle (httpx's default), a string is a CA bundle path, ``False`` turns verification off.
    """
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else certifi.where())


class AsyncAgentVaultClient:
    """
    Talks AgentVault's JSON-RPC to one agent endpoint without blocking the event loop.

    :param rpc_url: the JSON-RPC endpoint (the card's ``url``, e.g. ``http://host/a2a/``).
    :param auth: credentials as headers (see :mod:`auth`); fetched with ``await auth.aheaders()``.
    :param verify: TLS verification: True, False, or a CA bundle path.
    :param connect_timeout: seconds to establish a connection.
    :param read_timeout: seconds to wait for bytes of a plain call's answer.
    :param http: an ``httpx.AsyncClient`` to use (then the caller closes it); by default one of our own.
    """

    def __init__(
        self,
        rpc_url: str,
        *,
        auth: Auth = NO_AUTH,
        verify: bool | str = True,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self.auth = auth
        self.verify = verify
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._owns_http = http is None
        # requests follows redirects (AgentVault answers POST /a2a with 307 to /a2a/); so do we.
        self.http = http or httpx.AsyncClient(verify=ssl_context(verify), follow_redirects=True)

    async def __aenter__(self) -> AsyncAgentVaultClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    # -- plain calls -------------------------------------------------------------------------

    async def send(self, message: Message, *, task_id: str | None = None) -> str:
        """Start a task (or send a follow-up message to ``task_id``); return the task id."""
        result = await self._call(calls.SEND, calls.send_params(message, task_id), task_id=task_id)
        return calls.read_send(result, **calls.where(self.rpc_url, calls.SEND, task_id))

    async def get(self, task_id: str) -> Task:
        result = await self._call(calls.GET, {"id": task_id}, task_id=task_id)
        return calls.read_task(result, **calls.where(self.rpc_url, calls.GET, task_id))

    async def cancel(self, task_id: str) -> CancelResult:
        result = await self._call(calls.CANCEL, {"id": task_id}, task_id=task_id)
        return calls.read_cancel(result, **calls.where(self.rpc_url, calls.CANCEL, task_id))

    async def fetch_card(self, card_url: str) -> AgentCard:
        at = calls.where(card_url, calls.CARD)
        response = await self._request("GET", card_url, where=at)
        return calls.read_card(response.status_code, response.json, **at)

    # -- streaming ---------------------------------------------------------------------------

    async def subscribe(self, task_id: str, *, read_timeout: float | None = None) -> AsyncIterator[TaskEvent]:
        """
        Yield the task's events until a state that ends the wait (terminal or input-required).

        A JSON answer to the subscription is an error (AgentVault answers "Task not found" as
        ``200 application/json``), never an empty stream; a stream that ends early raises
        :class:`StreamDisconnectedError`.
        """
        at = calls.where(self.rpc_url, calls.SUBSCRIBE, task_id)
        response = await self._request(
            "POST", self.rpc_url, where=at, json=build_request(calls.SUBSCRIBE, {"id": task_id}),
            headers=calls.STREAM_HEADERS, stream=True, read_timeout=read_timeout,
        )
        try:
            content_type = response.headers.get("Content-Type")
            if calls.is_error_answer(response.status_code, content_type):
                body = await self._read_body(response, at)
                calls.refuse_answer(response.status_code, content_type, body, **at)
            calls.require_stream(content_type, **at)
            tally = calls.StreamTally(**at)
            try:
                async for sse in EventSource(response).aiter_sse():
                    if not sse.data:  # sseclient-py does not dispatch events without data either
                        continue
                    event = decode_event(sse.event, sse.data, **at)
                    yield event
                    if tally.finished_by(event):
                        return
            except (httpx.HTTPError, httpx.StreamError) as exc:
                raise tally.broke(exc) from None
            raise tally.ended()
        finally:
            await response.aclose()

    # -- plumbing ----------------------------------------------------------------------------

    async def _call(self, method: str, params: dict[str, Any], *, task_id: str | None) -> Any:
        where = {"agent_url": self.rpc_url, "method": method, "task_id": task_id}
        response = await self._request("POST", self.rpc_url, where=where, json=build_request(method, params))
        return decode_response(response.status_code, response.headers.get("Content-Type"), response.content, **where)

    def _timeout(self, read_timeout: float | None) -> httpx.Timeout:
        read = read_timeout if read_timeout is not None else self.read_timeout
        return httpx.Timeout(connect=self.connect_timeout, read=read, write=read, pool=self.connect_timeout)

    async def _request(
        self,
        http_method: str,
        url: str,
        *,
        where: dict[str, Any],
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        all_headers = {**(await self.auth.aheaders()), **(headers or {})}
        timeout = self._timeout(read_timeout)
        try:
            for _ in range(calls.MAX_REDIRECTS + 1):
                request = self.http.build_request(http_method, url, headers=all_headers, timeout=timeout, **kwargs)
                response = await self.http.send(request, stream=stream, follow_redirects=False)
                target = calls.redirect_target(
                    http_method, url, response.status_code, response.headers.get("Location"), **where
                )
                if target is None:
                    return response
                await response.aclose()
                url = target
            return response
        except httpx.ConnectTimeout:
            raise errors.AgentUnreachableError(f"cannot connect within {timeout.connect:g} s", **where) from None
        except httpx.TimeoutException:
            raise errors.AgentUnreachableError(f"no answer within {timeout.read:g} s", **where) from None
        except httpx.ConnectError as exc:
            raise errors.AgentUnreachableError(f"cannot connect ({_reason(exc)})", **where) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise errors.AgentUnreachableError(f"request failed ({type(exc).__name__})", **where) from None

    @staticmethod
    async def _read_body(response: httpx.Response, where: dict[str, Any]) -> bytes:
        try:
            return await response.aread()
        except httpx.HTTPError as exc:
            raise errors.AgentUnreachableError(f"answer broke off ({type(exc).__name__})", **where) from None
