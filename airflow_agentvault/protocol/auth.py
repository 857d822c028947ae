"""
Credentials as request headers: none, API key, bearer token, OAuth2 client credentials.

The secrets live only in these objects (built by the hook from an Airflow connection); they are never
put into error messages, XCom or trigger kwargs. Headers come from :meth:`Auth.header_program`, a core
routine like every other (:mod:`exchange`): an OAuth2 token is fetched through the same runner as the
agent's calls, under the auth's lock (a thread lock on the blocking path, an asyncio lock in the
triggerer), and cached until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.exchange import Fetch, Notify, Program, Request, TransportFailure

#: Refresh an OAuth2 token this many seconds before the server says it expires.
TOKEN_EXPIRY_MARGIN = 30.0
#: The most of a token endpoint's answer read (a token answer is a few hundred bytes).
TOKEN_ANSWER_BYTES = 1024 * 1024


class Auth:
    """No credentials."""

    scheme = "none"
    #: Held (``with`` / ``async with``) while :meth:`header_program` runs; only OAuth2 needs a real one.
    lock: Any = contextlib.nullcontext()
    async_lock: Any = contextlib.nullcontext()

    def headers(self) -> dict[str, str]:
        """The headers of fixed credentials."""
        return {}

    def header_program(self) -> Program[dict[str, str]]:
        """The headers to send (a routine, since OAuth2 may have to fetch a token first)."""
        return self.headers()
        yield  # pragma: no cover - makes this a generator; fixed credentials need no I/O

    def secrets(self) -> list[str]:
        """Values to mask in logs."""
        return []


NO_AUTH = Auth()

#: Card schemes (lowercased) whose credential travels as ``Authorization: Bearer <token>``.
BEARER_CARRIED = frozenset({"bearer", "oauth2", "openidconnect"})


def card_allows(declared: Iterable[str], auth: Auth) -> bool:
    """
    Whether a card declaring the auth schemes ``declared`` allows the connection's ``auth``.

    A card that declares nothing allows anything (the agent's own 401 is the authority). A bearer
    token or an OAuth2 client-credentials token fits any scheme whose credential is a bearer token
    (http bearer, oauth2, openIdConnect): the agent sees the same ``Authorization: Bearer`` header.
    """
    names = {name.lower() for name in declared}
    ours = auth.scheme.lower()
    return not names or ours in names or ours in ("bearer", "oauth2") and bool(names & BEARER_CARRIED)


@dataclass
class ApiKeyAuth(Auth):
    key: str = field(repr=False)
    header: str = "X-Api-Key"
    scheme = "apiKey"

    def headers(self) -> dict[str, str]:
        return {self.header: self.key}

    def secrets(self) -> list[str]:
        return [self.key]


@dataclass
class BearerAuth(Auth):
    token: str = field(repr=False)
    scheme = "bearer"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def secrets(self) -> list[str]:
        return [self.token]


@dataclass
class OAuth2ClientCredentials(Auth):
    """Client-credentials grant (form POST to ``token_url``), token cached until ``expires_in``."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    verify: bool | str = True
    timeout: float = 10.0
    #: Told each new access token, so it can be registered with the secrets masker. On the async path
    #: it may be a coroutine function (the triggerer's masker must not block its event loop).
    on_token: Callable[[str], Any] | None = field(default=None, repr=False, compare=False)
    scheme = "oauth2"
    _token: str | None = field(default=None, init=False, repr=False)
    _expires_at: float = field(default=0.0, init=False, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    async_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False, compare=False)

    def secrets(self) -> list[str]:
        return [self.client_secret] + ([self._token] if self._token else [])

    def _form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}
        if self.scope:
            form["scope"] = self.scope
        return form

    def _valid_token(self) -> str | None:
        if self._token and time.monotonic() < self._expires_at:
            return self._token
        return None

    def _store(self, status: int, body: Any) -> str:
        where: dict[str, Any] = {"agent_url": self.token_url, "method": "oauth2 token"}
        if status in (400, 401, 403):
            raise errors.NotAuthorizedError(f"token endpoint refused the client credentials (HTTP {status})", **where)
        if status >= 300:
            raise errors.AgentUnreachableError(f"token endpoint answered HTTP {status}", **where)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise errors.ProtocolViolationError("token endpoint answer lacks 'access_token'", **where)
        try:
            expires_in = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            raise errors.ProtocolViolationError(
                "token endpoint answer has a non-numeric 'expires_in'", **where
            ) from None
        self._token = body["access_token"]
        self._expires_at = time.monotonic() + max(expires_in - TOKEN_EXPIRY_MARGIN, expires_in / 2)
        return self._token

    def headers(self) -> dict[str, str]:
        raise TypeError("OAuth2 headers may need a token request: run header_program() with a client's runner")

    def header_program(self) -> Program[dict[str, str]]:
        token = self._valid_token()
        if token is None:
            request = Request("oauth2 token", "POST", self.token_url, self.token_url, form=self._form())
            try:
                response = yield Fetch(request, {}, self.timeout, TOKEN_ANSWER_BYTES)
            except TransportFailure as failure:
                raise errors.AgentUnreachableError(
                    f"token endpoint unreachable ({failure.reason})", agent_url=self.token_url, method="oauth2 token"
                ) from None
            token = self._store(response.status, _json_or_none(response.body))
            if self.on_token:
                yield Notify(self.on_token, token)
        return {"Authorization": f"Bearer {token}"}


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
