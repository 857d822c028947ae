"""
Credentials as request headers: none, API key, bearer token, OAuth2 client credentials.

The secrets live only in these objects (built by the hook from an Airflow connection); they are never
put into error messages, XCom or trigger kwargs. OAuth2 tokens are cached until shortly before they
expire, for the sync and async clients alike.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_agentvault.protocol import errors

#: Refresh an OAuth2 token this many seconds before the server says it expires.
TOKEN_EXPIRY_MARGIN = 30.0


class Auth:
    """No credentials."""

    scheme = "none"

    def headers(self) -> dict[str, str]:
        return {}

    async def aheaders(self) -> dict[str, str]:
        return self.headers()

    def secrets(self) -> list[str]:
        """Values to mask in logs."""
        return []


NO_AUTH = Auth()


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
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

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
        where = {"agent_url": self.token_url, "method": "oauth2 token"}
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
        import requests

        with self._lock:
            token = self._valid_token()
            if token is None:
                try:
                    response = requests.post(
                        self.token_url, data=self._form(), timeout=self.timeout, verify=self.verify
                    )
                except requests.RequestException as exc:
                    raise errors.AgentUnreachableError(
                        f"token endpoint unreachable ({type(exc).__name__})",
                        agent_url=self.token_url,
                        method="oauth2 token",
                    ) from None
                token = self._store(response.status_code, _json_or_none(response))
                if self.on_token:
                    self.on_token(token)
        return {"Authorization": f"Bearer {token}"}

    async def aheaders(self) -> dict[str, str]:
        import httpx

        from airflow_agentvault.protocol.async_client import ssl_context

        token = self._valid_token()
        if token is None:
            try:
                async with httpx.AsyncClient(verify=ssl_context(self.verify), timeout=self.timeout) as client:
                    response = await client.post(self.token_url, data=self._form())
            except httpx.HTTPError as exc:
                raise errors.AgentUnreachableError(
                    f"token endpoint unreachable ({type(exc).__name__})",
                    agent_url=self.token_url,
                    method="oauth2 token",
                ) from None
            token = self._store(response.status_code, _json_or_none(response))
            told = self.on_token(token) if self.on_token else None
            if inspect.isawaitable(told):
                await told
        return {"Authorization": f"Bearer {token}"}


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
