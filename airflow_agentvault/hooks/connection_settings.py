"""
An ``agentvault`` connection read into settings: URL, auth, TLS, card trust, limits and push, validated once.

Airflow-facing only through the values the hook passes in; secrets are masked by the hook. Kept apart from
the hook so that what a connection means is one small module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from airflow_agentvault.connection_form import AUTH_TYPES, DIALECT_CHOICES
from airflow_agentvault.protocol.auth import NO_AUTH, ApiKeyAuth, Auth, BearerAuth, OAuth2ClientCredentials
from airflow_agentvault.protocol.card_trust import CardTrust, public_key_set
from airflow_agentvault.protocol.dialects import AGENTVAULT, AUTO
from airflow_agentvault.protocol.errors import redact_url
from airflow_agentvault.protocol.exchange import DEFAULT_MAX_ANSWER_BYTES, DEFAULT_MAX_EVENT_BYTES, origin
from airflow_agentvault.protocol.operations import DEFAULT_CONNECT_TIMEOUT
from airflow_agentvault.protocol.push import DEFAULT_SAFETY_POLL, PUSH_MODES, PUSH_OFF, PushSettings

DEFAULT_RPC_PATH = "/a2a/"
DEFAULT_CARD_PATH = "/agent-card.json"

class ConnectionConfigError(ValueError):
    """The connection is incomplete or contradictory; the message says which field to fix."""


@dataclass(frozen=True)
class AgentSettings:
    """Everything needed to talk to one agent, read from a connection."""

    rpc_url: str | None
    card_url: str
    auth: Auth
    verify: bool | str
    connect_timeout: float
    dialect: str
    trust_card_endpoint: bool = False
    trust: CardTrust = CardTrust()
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    push: PushSettings = PushSettings()


def credential_safe_endpoint(settings: AgentSettings, rpc_url: str) -> tuple[str, str | None]:
    """
    Keep credentials with the origin the connection names.

    An agent card may name an endpoint on another host; with credentials configured we keep the
    card's path but not its host (and say so), unless extra ``trust_card_endpoint`` is true.
    """
    ours, theirs = origin(settings.card_url), origin(rpc_url)
    if settings.auth is NO_AUTH or settings.trust_card_endpoint or ours == theirs:
        return rpc_url, None
    parts = urlsplit(rpc_url)
    pinned = ours + parts.path + (f"?{parts.query}" if parts.query else "")
    return pinned, (
        f"the agent card names the endpoint {redact_url(rpc_url)} on another origin than the connection; "
        f"credentials stay with {ours}, so {redact_url(pinned)} is used (extra trust_card_endpoint "
        "follows the card)"
    )


def _card_trust(conn_id: str, extra: dict[str, Any]) -> CardTrust:
    try:
        keys = public_key_set(extra.get("card_keys"))
    except ValueError as exc:
        raise ConnectionConfigError(f"connection '{conn_id}': extra 'card_keys' {exc}") from None
    return CardTrust(
        card_keys=keys,
        **{name: _truthy(extra.get(name), False) for name in
           ("require_signed_card", "trust_card_jwks", "allow_other_origins", "allow_private_networks")},
    )


#: Extras renamed so that Airflow's masker (which hides any extra whose name contains "api_key" or
#: "token") shows them in the form: new name -> the name it replaces, still read.
RENAMED_EXTRAS = {"key_header": "api_key_header", "oauth_endpoint": "token_url"}


def _extra(extra: dict[str, Any], name: str) -> Any:
    return extra.get(name) or extra.get(RENAMED_EXTRAS.get(name, name))


def _card_home(home: str, dialect: str) -> str:
    """Where to start looking for the card: AgentVault's path, or the origin (A2A's well-known paths first)."""
    return urljoin(home, DEFAULT_CARD_PATH) if dialect == AGENTVAULT else home + "/"


N = TypeVar("N", int, float)


def _positive(conn_id: str, name: str, value: Any, default: N) -> N:
    """A positive number from an extra, of the default's type (seconds, or a whole number of bytes)."""
    if value is None or value == "":
        return default
    try:
        number = type(default)(value)
    except (TypeError, ValueError):
        number = type(default)(-1)
    if not number > 0:
        kind = "positive whole number" if isinstance(default, int) else "positive number"
        raise ConnectionConfigError(f"connection '{conn_id}': extra '{name}' must be a {kind}, got {value!r}")
    return number


def _truthy(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def push_settings(conn_id: str, extra: dict[str, Any]) -> PushSettings:
    """Extras ``push`` (auto / on / off), ``push_bind`` (host[:port]), ``push_url``, ``push_safety_poll``."""
    mode = str(extra.get("push") or PUSH_OFF).strip().lower()
    if mode not in PUSH_MODES:
        raise ConnectionConfigError(f"connection '{conn_id}': extra 'push' must be one of {', '.join(PUSH_MODES)}, "
                                    f"got {mode!r}")
    bind = str(extra.get("push_bind") or "127.0.0.1").strip()
    host, _, port = bind.rpartition(":") if bind.rpartition(":")[2].isdigit() else (bind, "", "0")
    public = str(extra.get("push_url") or "").strip() or None
    if public and urlsplit(public).scheme not in ("http", "https"):
        raise ConnectionConfigError(f"connection '{conn_id}': extra 'push_url' is not an http(s) URL: {public!r}")
    return PushSettings(mode, host.strip("[]") or "127.0.0.1", int(port), public,
                        _positive(conn_id, "push_safety_poll", extra.get("push_safety_poll"), DEFAULT_SAFETY_POLL))


def settings_from_connection(conn_id: str, host: str | None, login: str | None, password: str | None,
                             extra: dict[str, Any], *, on_token: Any = None, port: int | None = None,
                             schema: str | None = None) -> AgentSettings:
    """
    Map connection fields to :class:`AgentSettings`, with errors that name the field to fix.

    ``host`` is normally a whole URL; a bare host name (as a URI-form connection such as
    ``agentvault://127.0.0.1:8765/a2a/`` gives) is completed with ``port`` and ``schema`` (the path),
    over https unless extra ``scheme`` says ``http``.
    """
    if not host:
        raise ConnectionConfigError(f"connection '{conn_id}': 'host' must hold the agent URL")
    if "://" in host:
        url = host
    else:
        scheme = str(extra.get("scheme") or "https").lower()
        url = f"{scheme}://{host}"
        if port or schema:
            url = f"{scheme}://{host.rstrip('/')}{f':{port}' if port else ''}/{(schema or '').lstrip('/')}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectionConfigError(f"connection '{conn_id}': 'host' is not an http(s) URL: {redact_url(url)}")
    home = origin(url)
    dialect = str(extra.get("dialect") or AGENTVAULT).strip().lower()
    if parts.path.endswith(".json"):
        rpc_url, card_url = extra.get("rpc_url") or None, url
    elif parts.path in ("", "/") and dialect in (AGENTVAULT, AUTO):
        # AgentVault agents mount JSON-RPC below the base URL (the SDK examples use /a2a/); for `auto`
        # that is only the hint the card is checked against. A2A agents may serve at the base URL.
        rpc_url = urljoin(home, extra.get("rpc_path") or DEFAULT_RPC_PATH)
        card_url = extra.get("card_url") or _card_home(home, dialect)
    else:
        rpc_url, card_url = url, extra.get("card_url") or _card_home(home, dialect)

    verify: bool | str = _truthy(extra.get("verify_tls"), True)
    if extra.get("ca_bundle"):
        verify = str(extra["ca_bundle"]) if verify else False

    auth_type = str(extra.get("auth_type") or ("api_key" if password else "none")).strip().lower()
    if auth_type not in AUTH_TYPES:
        raise ConnectionConfigError(
            f"connection '{conn_id}': extra 'auth_type' must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}"
        )
    auth: Auth = NO_AUTH
    if auth_type in ("api_key", "bearer") and not password:
        raise ConnectionConfigError(f"connection '{conn_id}': auth_type {auth_type} needs the secret in 'password'")
    if auth_type == "api_key":
        auth = ApiKeyAuth(key=password, header=_extra(extra, "key_header") or "X-Api-Key")
    elif auth_type == "bearer":
        auth = BearerAuth(token=password)
    elif auth_type == "oauth2":
        missing = [n for n, v in (("login (client id)", login), ("password (client secret)", password),
                                  ("extra oauth_endpoint", _extra(extra, "oauth_endpoint"))) if not v]
        if missing:
            raise ConnectionConfigError(f"connection '{conn_id}': auth_type oauth2 needs {', '.join(missing)}")
        auth = OAuth2ClientCredentials(
            token_url=urljoin(home + "/", _extra(extra, "oauth_endpoint")),
            client_id=login,
            client_secret=password,
            scope=extra.get("scope") or None,
            verify=verify,
            on_token=on_token,
        )
    if dialect not in DIALECT_CHOICES:
        raise ConnectionConfigError(
            f"connection '{conn_id}': extra 'dialect' must be one of {', '.join(DIALECT_CHOICES)}, got {dialect!r}"
        )
    return AgentSettings(
        rpc_url=rpc_url,
        card_url=card_url,
        auth=auth,
        verify=verify,
        connect_timeout=_positive(conn_id, "connect_timeout", extra.get("connect_timeout"), DEFAULT_CONNECT_TIMEOUT),
        dialect=dialect,
        trust_card_endpoint=_truthy(extra.get("trust_card_endpoint"), False),
        trust=_card_trust(conn_id, extra),
        max_answer_bytes=_positive(conn_id, "max_answer_bytes", extra.get("max_answer_bytes"), DEFAULT_MAX_ANSWER_BYTES),
        max_event_bytes=_positive(conn_id, "max_event_bytes", extra.get("max_event_bytes"), DEFAULT_MAX_EVENT_BYTES),
        push=push_settings(conn_id, extra),
    )
