"""
The protocol dialects an agent may speak, behind one client interface.

=============  =====================================================  =============================
dialect        wire                                                    clients
=============  =====================================================  =============================
agentvault     AgentVault JSON-RPC (``tasks/send`` ...), named SSE      AgentVaultClient (+ async)
a2a-0.3        A2A 0.3 JSON-RPC (``message/send`` ...), kind/final      :mod:`a2a_v03`
a2a-1.0        A2A 1.0 JSON-RPC (``SendMessage`` ...), A2A-Version      :mod:`a2a_v10`
a2a-rest       A2A 1.0 HTTP+JSON (``POST /message:send`` ...)           :mod:`a2a_rest`
=============  =====================================================  =============================

Every client has ``rpc_url``, ``send``, ``get``, ``cancel``, ``subscribe`` and ``fetch_card`` with the
same answers and errors (the async ones awaited), so the operators, followers and triggers never know
which one they hold. ``auto`` is not a dialect but a choice made by :func:`discover` from the agent
card. Nothing here imports Airflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_agentvault.protocol.auth import NO_AUTH, Auth
from airflow_agentvault.protocol.client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT

if TYPE_CHECKING:
    import httpx
    import requests

    from airflow_agentvault.protocol.async_client import AsyncAgentVaultClient
    from airflow_agentvault.protocol.client import AgentVaultClient
    from airflow_agentvault.protocol.dialects.discovery import DiscoveredCard

AGENTVAULT = "agentvault"
AUTO = "auto"

_PACKAGE = "airflow_agentvault.protocol"

#: dialect name -> ("module:class" of the sync client, of the async client). Imported on first use:
#: every task process parses its DAG file, and most agents speak one dialect.
DIALECTS: dict[str, tuple[str, str]] = {
    AGENTVAULT: (f"{_PACKAGE}.client:AgentVaultClient", f"{_PACKAGE}.async_client:AsyncAgentVaultClient"),
    "a2a-0.3": (f"{_PACKAGE}.dialects.a2a_v03:A2AV03Client", f"{_PACKAGE}.dialects.a2a_v03:AsyncA2AV03Client"),
    "a2a-1.0": (f"{_PACKAGE}.dialects.a2a_v10:A2AV10Client", f"{_PACKAGE}.dialects.a2a_v10:AsyncA2AV10Client"),
    "a2a-rest": (f"{_PACKAGE}.dialects.a2a_rest:A2ARestClient", f"{_PACKAGE}.dialects.a2a_rest:AsyncA2ARestClient"),
}

#: Names this package re-exports from its modules, loaded on first access (PEP 562).
_LAZY = {
    "A2ARestClient": "a2a_rest", "AsyncA2ARestClient": "a2a_rest",
    "A2AV03Client": "a2a_v03", "AsyncA2AV03Client": "a2a_v03",
    "A2AV10Client": "a2a_v10", "AsyncA2AV10Client": "a2a_v10",
    "StreamUnavailableError": "base",
    "DiscoveredCard": "discovery", "adiscover": "discovery", "auth_warnings": "discovery", "discover": "discovery",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Discovered(NamedTuple):
    """What discovery decided: the dialect, the endpoint, and the card it read (None if none was read)."""

    dialect: str
    rpc_url: str
    card: DiscoveredCard | None


#: What a connection's ``dialect`` may say.
CHOICES = (*DIALECTS, AUTO)


def _load(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _targets(dialect: str) -> tuple[str, str]:
    try:
        return DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}") from None


def client_for(dialect: str, rpc_url: str, **kwargs: Any) -> AgentVaultClient:
    """A synchronous client of ``dialect`` for the endpoint (keyword arguments as AgentVaultClient's)."""
    return _load(_targets(dialect)[0])(rpc_url, **kwargs)


def async_client_for_dialect(dialect: str, rpc_url: str, **kwargs: Any) -> AsyncAgentVaultClient:
    """An asynchronous client of ``dialect`` (keyword arguments as AsyncAgentVaultClient's)."""
    return _load(_targets(dialect)[1])(rpc_url, **kwargs)


def resolve(dialect: str, rpc_url: str | None, card_url: str, *, session: requests.Session | None = None,
            auth: Auth = NO_AUTH, verify: bool | str = True, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
            read_timeout: float = DEFAULT_READ_TIMEOUT) -> Discovered:
    """
    The dialect and endpoint for a connection's settings, reading the card only when needed.

    ``auto`` reads the card (``rpc_url`` as the endpoint hint); a fixed dialect with an endpoint reads
    nothing; a fixed dialect with only a card URL takes that dialect's endpoint from the card.
    """
    if dialect != AUTO:
        _targets(dialect)
        if rpc_url:
            return Discovered(dialect, rpc_url, None)
    from airflow_agentvault.protocol.dialects.discovery import discover

    return discover(card_url, session, auth=auth, verify=verify, connect_timeout=connect_timeout,
                    read_timeout=read_timeout, dialect=None if dialect == AUTO else dialect,
                    endpoint_hint=rpc_url if dialect == AUTO else None)


async def aresolve(dialect: str, rpc_url: str | None, card_url: str, *, http: httpx.AsyncClient | None = None,
                   auth: Auth = NO_AUTH, verify: bool | str = True,
                   connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                   read_timeout: float = DEFAULT_READ_TIMEOUT) -> Discovered:
    """:func:`resolve` without blocking the event loop."""
    if dialect != AUTO:
        _targets(dialect)
        if rpc_url:
            return Discovered(dialect, rpc_url, None)
    from airflow_agentvault.protocol.dialects.discovery import adiscover

    return await adiscover(card_url, http, auth=auth, verify=verify, connect_timeout=connect_timeout,
                           read_timeout=read_timeout, dialect=None if dialect == AUTO else dialect,
                           endpoint_hint=rpc_url if dialect == AUTO else None)


__all__ = [
    "AGENTVAULT",
    "AUTO",
    "CHOICES",
    "DIALECTS",
    "Discovered",
    "DiscoveredCard",
    "StreamUnavailableError",
    "adiscover",
    "aresolve",
    "async_client_for_dialect",
    "auth_warnings",
    "client_for",
    "discover",
    "resolve",
]
