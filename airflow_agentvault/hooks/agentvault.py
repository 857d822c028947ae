"""
The ``agentvault`` connection type and its hook: where an agent lives and how to authenticate.

The connection holds the agent URL (its JSON-RPC endpoint, its base URL or its card URL), the auth
(``none``, API key, bearer token, OAuth2 client credentials) and TLS settings. Secrets are read only
from the connection and registered with Airflow's secrets masker before any request is made. The hook
builds protocol clients; it never builds HTTP requests itself.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_agentvault.compat import aextra_dejson, amask_secret
from airflow_agentvault.connection_form import UI_FIELD_BEHAVIOUR
from airflow_agentvault.hooks.connection_settings import (
    AgentSettings,
    ConnectionConfigError,
    credential_safe_endpoint,
    settings_from_connection,
)
from airflow_agentvault.protocol import operations
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.card_trust import vet
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects import AGENTVAULT, AUTO, Discovered, codec_for
from airflow_agentvault.protocol.dialects.cards import auth_mismatch
from airflow_agentvault.protocol.errors import AgentVaultError, redact_url
from airflow_agentvault.protocol.exchange import Program
from airflow_agentvault.protocol.operations import DEFAULT_READ_TIMEOUT
from airflow_agentvault.protocol.push import PUSH_OFF

DEFAULT_RPC_PATH = "/a2a/"
DEFAULT_CARD_PATH = "/agent-card.json"


def checked(agent: operations.Agent, settings: AgentSettings, found: Discovered) -> Program[list[str]]:
    """What the card-trust checks found for what discovery found (the endpoint as it will be used), or raise."""
    endpoint, _ = credential_safe_endpoint(settings, found.rpc_url)
    notes = yield from vet(agent, found.card, endpoint, settings.trust, (settings.card_url, settings.rpc_url or ""))
    return notes


#: What discovery found, per connection settings, for this process (a task process, or the triggerer):
#: stages on the same agent read its card once.
DISCOVERED: dict[tuple[Any, ...], Discovered] = {}


def _resolution_key(settings: AgentSettings) -> tuple[Any, ...]:
    return (settings.dialect, settings.rpc_url, settings.card_url, settings.auth.scheme, str(settings.verify),
            settings.trust_card_endpoint, settings.trust)


def _remember(settings: AgentSettings, found: Discovered) -> None:
    if found.card is not None:
        DISCOVERED[_resolution_key(settings)] = found


def forget_discoveries() -> None:
    """Read agent cards afresh (an agent moved its endpoint; tests)."""
    DISCOVERED.clear()


def identified(agent: operations.Agent, found: Discovered) -> operations.Agent:
    """The agent named as its card names it (for spans): its name, and its id (else the card's URL)."""
    if found.card is None:
        return agent
    raw = found.card.raw
    name = raw.get("name") if isinstance(raw.get("name"), str) else None
    agent_id = raw.get("human_readable_id") or raw.get("humanReadableId") or redact_url(found.card.url)
    return replace(agent, name=name, agent_id=str(agent_id), push_offered=offers_push(raw))


def offers_push(raw: dict[str, Any]) -> bool:
    """Whether a card's capabilities say the agent sends push notifications (1.0 and 0.3 spell it alike)."""
    capabilities = raw.get("capabilities")
    return isinstance(capabilities, dict) and capabilities.get("pushNotifications") is True


class AgentVaultHook(BaseHook):
    """
    Interact with an AgentVault (A2A) agent described by an ``agentvault`` connection.

    :param agentvault_conn_id: the connection id.
    :param read_timeout: seconds to wait for a plain call's answer.
    """

    conn_name_attr = "agentvault_conn_id"
    default_conn_name = "agentvault_default"
    conn_type = "agentvault"
    hook_name = "AgentVault Agent"

    def __init__(self, agentvault_conn_id: str = default_conn_name, *, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.agentvault_conn_id = agentvault_conn_id
        self.read_timeout = read_timeout
        self._card_url: str | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form behaviour in the hook-method shape (``hidden_fields``; provider info uses ``hidden-fields``)."""
        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    # -- credentials: read and masked here only ------------------------------------------------------

    @cached_property
    def settings(self) -> AgentSettings:
        """The connection's settings; every secret is registered with the masker before any request."""
        conn = self.get_connection(self.agentvault_conn_id)
        if conn.password:
            mask_secret(conn.password)
        settings = settings_from_connection(
            self.agentvault_conn_id, conn.host, conn.login, conn.password, conn.extra_dejson or {},
            on_token=mask_secret, port=conn.port, schema=conn.schema,
        )
        for secret in settings.auth.secrets():
            mask_secret(secret)
        return settings

    async def asettings(self) -> AgentSettings:
        """:attr:`settings` read without blocking the event loop (the triggerer's masker is async too)."""
        conn = await BaseHook.aget_connection(self.agentvault_conn_id)
        extra = await aextra_dejson(conn)
        if conn.password:
            await amask_secret(conn.password)
        settings = settings_from_connection(
            self.agentvault_conn_id, conn.host, conn.login, conn.password, extra or {},
            on_token=amask_secret, port=conn.port, schema=conn.schema,
        )
        for secret in settings.auth.secrets():
            await amask_secret(secret)
        return settings

    # -- clients ------------------------------------------------------------------------------------------

    def _options(self, settings: AgentSettings) -> dict[str, Any]:
        return {"auth": settings.auth, "verify": settings.verify, "connect_timeout": settings.connect_timeout,
                "read_timeout": self.read_timeout, "max_answer_bytes": settings.max_answer_bytes,
                "max_event_bytes": settings.max_event_bytes}

    def _endpoint(self, settings: AgentSettings, found: Discovered) -> str:
        """The endpoint to use for what discovery found, said once in the log."""
        self._card_url = found.card.url if found.card is not None else settings.card_url
        if found.card is not None:
            self.log.info("Agent card at %s names the endpoint %s", redact_url(found.card.url),
                          redact_url(found.rpc_url))
            for warning in found.card.warnings:
                self.log.warning("Agent card at %s: %s", redact_url(found.card.url), warning)
        rpc_url, warning = credential_safe_endpoint(settings, found.rpc_url)
        if warning:
            self.log.warning("%s", warning)
        self.log.info("Talking to agent %s in the %s dialect%s", redact_url(rpc_url), found.dialect,
                      " (chosen from its card)" if settings.dialect == AUTO else "")
        return rpc_url

    def _log_checks(self, notes: list[str]) -> None:
        self.log.debug("Agent card checks: %s", "; ".join(notes))

    def get_client(self) -> AgentClient:
        """A blocking client of the connection's dialect (``auto``: the one the agent card names)."""
        settings = self.settings
        options = self._options(settings)
        probe = AgentClient(settings.card_url, **options)
        found = DISCOVERED.get(_resolution_key(settings))
        if found is None:
            found = probe.run(operations.resolve(probe.agent, settings.dialect, settings.rpc_url, settings.card_url))
            self._log_checks(probe.run(checked(probe.agent, settings, found)))
            _remember(settings, found)
        client = AgentClient(self._endpoint(settings, found), codec=codec_for(found.dialect),
                             session=probe.runner.session, **options)
        client.agent = identified(client.agent, found)
        return client

    async def aget_client(self) -> AsyncAgentClient:
        """An async client of the connection's dialect, for the triggerer; close it (``async with``)."""
        settings = await self.asettings()
        options = self._options(settings)
        found = DISCOVERED.get(_resolution_key(settings))
        if found is None:
            async with AsyncAgentClient(settings.card_url, **options) as probe:
                found = await probe.run(
                    operations.resolve(probe.agent, settings.dialect, settings.rpc_url, settings.card_url))
                self._log_checks(await probe.run(checked(probe.agent, settings, found)))
            _remember(settings, found)
        client = AsyncAgentClient(self._endpoint(settings, found), codec=codec_for(found.dialect),
                                  keep_alive=settings.push.mode == PUSH_OFF, **options)
        client.agent = identified(client.agent, found)
        client.push = settings.push
        return client

    @cached_property
    def client(self) -> AgentClient:
        """The blocking client, made once per hook."""
        return self.get_client()

    def get_conn(self) -> AgentClient:
        return self.client

    @property
    def resolved_agent(self) -> operations.Agent | None:
        """The agent, if this hook's client was made already (so asking costs no request)."""
        client = self.__dict__.get("client")
        return client.agent if client is not None else None

    @property
    def agent_card_url(self) -> str:
        """The agent card's URL (the one discovery read, else the connection's), safe to show."""
        if self._card_url is None:
            self.get_conn()  # resolving the endpoint finds the card too
        return redact_url(self._card_url)

    @property
    def agent_url(self) -> str:
        """The agent's endpoint, safe to log and to push to XCom."""
        return redact_url(self.client.rpc_url)

    def test_connection(self) -> tuple[bool, str]:
        """Fetch the agent card and say what was found, and what of it was checked (signature, endpoint)."""
        try:
            settings = self.settings
            probe = AgentClient(settings.card_url, **self._options(settings))
            if settings.dialect != AGENTVAULT:
                found = probe.run(operations.discover(
                    probe.agent, settings.card_url, dialect=None if settings.dialect == AUTO else settings.dialect,
                    endpoint_hint=settings.rpc_url if settings.dialect == AUTO else None))
                # What get_client would use: ``auto`` is this discovery; a fixed dialect may use no card at all.
                used = found if settings.dialect == AUTO else probe.run(operations.resolve(
                    probe.agent, settings.dialect, settings.rpc_url, settings.card_url))
                checks = probe.run(checked(probe.agent, settings, used))
                notes = "".join(f"; warning: {w}" for w in found.card.warnings)
                push = "offers" if offers_push(found.card.raw) else "does not offer"
                return True, (f"Found agent {found.card.agent_card.summary()}; using {found.dialect} at "
                              f"{redact_url(found.rpc_url)}; checked: {', '.join(checks)}; the agent {push} push "
                              f"notifications (push: {settings.push.mode}){notes}")
            card = probe.fetch_card(settings.card_url)
            found = probe.run(operations.resolve(probe.agent, settings.dialect, settings.rpc_url, settings.card_url))
            checks = probe.run(checked(probe.agent, settings, found))
        except (AgentVaultError, ConnectionConfigError) as exc:
            return False, str(exc)
        mismatch = auth_mismatch([s.scheme for s in card.auth_schemes], settings.auth)
        return True, (f"Found agent {card.summary()}; checked: {', '.join(checks)}"
                      f"{f'; warning: {mismatch}' if mismatch else ''}")
