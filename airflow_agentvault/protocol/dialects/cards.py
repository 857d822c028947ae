"""
Reading an agent card to find the endpoint and the dialect (the connection's ``dialect: auto``).

Three kinds of card are recognised, whatever path they were found at:

* A2A 1.0: ``supportedInterfaces: [{url, protocolBinding, protocolVersion}]``. ``JSONRPC`` 1.x is
  ``a2a-1.0``, ``HTTP+JSON`` 1.x is ``a2a-rest``, ``JSONRPC`` 0.x is ``a2a-0.3`` (a 1.x SDK serving 0.3
  clients lists both, and merges the 0.3 fields below into the same card).
* A2A 0.3 / 0.2: ``url`` with ``protocolVersion`` / ``preferredTransport`` (``JSONRPC`` by default) and
  ``additionalInterfaces: [{url, transport}]``: ``JSONRPC`` is ``a2a-0.3``.
* AgentVault: ``url`` with ``authSchemes`` or ``capabilities.a2aVersion``: ``agentvault``.

Where: the card URL if one is given (a path ending in ``.json``), then the origin's
``/.well-known/agent-card.json`` (A2A 0.3+), ``/.well-known/agent.json`` (A2A up to 0.2) and AgentVault's
``/agent-card.json``. A 404 (or an answer that is no JSON object) moves on to the next; 401/403 and an
unreachable agent stop at once.

Choice, in ``auto``: if the connection names an endpoint whose path is one the card lists, that
interface wins and the connection's URL is kept (the card may name a host only valid inside the agent's
network); otherwise the card's preferred usable interface: ``a2a-1.0``, ``a2a-rest``, ``a2a-0.3``,
``agentvault``. With a fixed dialect and no endpoint in the connection, the card's interface of that
dialect. Interfaces we cannot speak (gRPC, HTTP+JSON 0.3) are listed in the error when nothing fits.

Auth: the schemes the card declares (AgentVault ``authSchemes``; A2A ``securitySchemes``, restricted to
those its ``security`` / ``securityRequirements`` name) are compared with the connection's by
:func:`~airflow_agentvault.protocol.auth.card_allows` (the hook's test_connection uses it too); a mismatch is
a warning in :attr:`DiscoveredCard.warnings`, never an error, because cards are often inexact and the
agent's own 401 is the authority (raised as NotAuthorizedError by the clients).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast
from urllib.parse import urljoin, urlsplit

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.auth import ApiKeyAuth, Auth, card_allows
from airflow_agentvault.protocol.exchange import origin
from airflow_agentvault.protocol.jsonrpc import raise_for_http_status
from airflow_agentvault.protocol.models import AgentCard, AuthScheme, parse_model

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json", "/agent-card.json")
CARD_METHOD = "GET agent card"

#: Preference among the dialects a card offers, best first.
PREFERENCE = ("a2a-1.0", "a2a-rest", "a2a-0.3", "agentvault")


@dataclass(frozen=True)
class Interface:
    """One endpoint a card lists; ``dialect`` is None when we cannot speak it."""

    url: str
    binding: str
    version: str
    dialect: str | None

    def describe(self) -> str:
        where = errors.redact_url(self.url) if "://" in self.url else self.url
        skipped = "" if self.dialect else " (not spoken by this provider)"
        return f"{self.binding} {self.version} at {where}{skipped}"


def _address(card_url: str, binding: str, url: str) -> str:
    """An interface's address: HTTP bindings resolve against the card; others (gRPC) stay as written."""
    if "://" in url or binding.upper() in ("JSONRPC", "HTTP+JSON", "REST", "AGENTVAULT JSON-RPC"):
        return urljoin(card_url, url)
    return url


class Discovered(NamedTuple):
    """What discovery decided: the dialect, the endpoint, and the card it read (None if none was read)."""

    dialect: str
    rpc_url: str
    card: DiscoveredCard | None


@dataclass
class DiscoveredCard:
    """An agent card as read: where, what kind, which endpoints and auth schemes, and any warnings."""

    url: str
    raw: dict[str, Any]
    kind: str
    interfaces: list[Interface]
    auth_schemes: list[str]
    api_key_locations: list[tuple[str, str]] = field(default_factory=list)  # (where: header/query/cookie, name)
    warnings: list[str] = field(default_factory=list)

    @property
    def agent_card(self) -> AgentCard:
        return agent_card_from(self.raw, self.url)

    def usable(self) -> list[Interface]:
        return [i for i in self.interfaces if i.dialect]


# -- parsing (no I/O) -------------------------------------------------------------------------------------


def _dialect_of(binding: str, version: str) -> str | None:
    major = (version or "").split(".")[0]
    binding = (binding or "").upper()
    if binding == "JSONRPC":
        return "a2a-1.0" if major not in ("", "0") else "a2a-0.3"
    if binding in ("HTTP+JSON", "REST") and major not in ("", "0"):
        return "a2a-rest"
    return None


def card_kind(raw: dict[str, Any]) -> str:
    if isinstance(raw.get("supportedInterfaces"), list):
        return "a2a-1.0"
    capabilities = raw.get("capabilities")
    if "authSchemes" in raw or isinstance(capabilities, dict) and "a2aVersion" in capabilities:
        return "agentvault"
    return "a2a-0.3"


def interfaces_of(raw: dict[str, Any], card_url: str) -> list[Interface]:
    kind = card_kind(raw)
    found: list[Interface] = []
    if kind == "a2a-1.0":
        for entry in raw["supportedInterfaces"]:
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                binding = str(entry.get("protocolBinding") or "")
                version = str(entry.get("protocolVersion") or "1.0")
                url = _address(card_url, binding, entry["url"])
                found.append(Interface(url, binding, version, _dialect_of(binding, version)))
    elif kind == "agentvault":
        if isinstance(raw.get("url"), str):
            version = str((raw.get("capabilities") or {}).get("a2aVersion") or "")
            found.append(Interface(urljoin(card_url, raw["url"]), "AgentVault JSON-RPC", version, "agentvault"))
    else:
        version = str(raw.get("protocolVersion") or "0.3")
        if isinstance(raw.get("url"), str):
            binding = str(raw.get("preferredTransport") or "JSONRPC")
            found.append(Interface(_address(card_url, binding, raw["url"]), binding, version,
                                   _dialect_of(binding, version)))
        for entry in raw.get("additionalInterfaces") or []:
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                binding = str(entry.get("transport") or "")
                item = Interface(_address(card_url, binding, entry["url"]), binding, version,
                                 _dialect_of(binding, version))
                if item not in found:
                    found.append(item)
    return found


def _scheme_type(scheme: dict[str, Any]) -> tuple[str, tuple[str, str] | None]:
    """One A2A security scheme (0.3 or 1.0 shape) -> (our scheme name, api key location or None)."""
    if "apiKeySecurityScheme" in scheme or scheme.get("type") == "apiKey":
        body = scheme.get("apiKeySecurityScheme") or scheme
        return "apiKey", (str(body.get("location") or body.get("in") or "header").lower(), str(body.get("name") or ""))
    if "httpAuthSecurityScheme" in scheme or scheme.get("type") == "http":
        body = scheme.get("httpAuthSecurityScheme") or scheme
        return str(body.get("scheme") or "http").lower(), None
    if "oauth2SecurityScheme" in scheme or scheme.get("type") == "oauth2":
        return "oauth2", None
    if "openIdConnectSecurityScheme" in scheme or scheme.get("type") == "openIdConnect":
        return "openIdConnect", None
    if "mtlsSecurityScheme" in scheme or scheme.get("type") == "mutualTLS":
        return "mutualTLS", None
    return "unknown", None


def _required_scheme_names(raw: dict[str, Any]) -> set[str] | None:
    """Names the card's requirements reference (None: it states none, so every declared scheme counts)."""
    names: set[str] = set()
    stated = False
    for requirement in raw.get("securityRequirements") or []:  # 1.0: [{"schemes": {name: {...}}}]
        stated = True
        if isinstance(requirement, dict) and isinstance(requirement.get("schemes"), dict):
            names.update(requirement["schemes"])
    for requirement in raw.get("security") or []:  # 0.3: [{name: [scopes]}]
        stated = True
        if isinstance(requirement, dict):
            names.update(requirement)
    return names if stated else None


def auth_schemes_of(raw: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """The auth schemes a card declares, in our names, and where it wants an API key."""
    if card_kind(raw) == "agentvault":
        declared_schemes = [s for s in raw.get("authSchemes") or [] if isinstance(s, dict) and s.get("scheme")]
        return [str(s["scheme"]) for s in declared_schemes], []
    declared: dict[str, Any] = raw["securitySchemes"] if isinstance(raw.get("securitySchemes"), dict) else {}
    wanted = _required_scheme_names(raw)
    schemes: list[str] = []
    locations: list[tuple[str, str]] = []
    for name, scheme in declared.items():
        if wanted is not None and name not in wanted or not isinstance(scheme, dict):
            continue
        ours, location = _scheme_type(scheme)
        if ours not in schemes:
            schemes.append(ours)
        if location:
            locations.append(location)
    return schemes, locations


def auth_mismatch(declared: list[str], auth: Auth) -> str | None:
    """The warning when a card declaring ``declared`` does not allow ``auth`` (:func:`card_allows`), else None."""
    if card_allows(declared, auth):
        return None
    return (f"the agent card declares auth {sorted(declared)} but the connection uses {auth.scheme}: "
            "expect HTTP 401 unless the agent accepts it anyway")


def auth_warnings(card: DiscoveredCard, auth: Auth) -> list[str]:
    """Why the connection's auth may not fit what the card declares (empty when it fits or nothing is declared)."""
    mismatch = auth_mismatch(card.auth_schemes, auth)
    if mismatch:
        return [mismatch]
    warnings = []
    if isinstance(auth, ApiKeyAuth):
        for location, name in card.api_key_locations:
            if location != "header":
                warnings.append(f"the agent card wants the API key in a {location} parameter {name!r}; the "
                                "connection sends it in a header")
            elif name and name.lower() != auth.header.lower():
                warnings.append(f"the agent card wants the API key in header {name!r}; the connection sends it in "
                                f"{auth.header!r} (set extra 'key_header')")
    return warnings


def read_card(raw: Any, card_url: str) -> DiscoveredCard:
    where: dict[str, Any] = {"agent_url": card_url, "method": CARD_METHOD}
    if not isinstance(raw, dict):
        raise errors.ProtocolViolationError("agent card is not a JSON object", **where)
    schemes, locations = auth_schemes_of(raw)
    return DiscoveredCard(card_url, raw, card_kind(raw), interfaces_of(raw, card_url), schemes, locations)


def agent_card_from(raw: dict[str, Any], card_url: str, dialect: str | None = None) -> AgentCard:
    """Any card kind -> our AgentCard (``url``: the endpoint of ``dialect``, else the preferred one)."""
    where: dict[str, Any] = {"agent_url": card_url, "method": CARD_METHOD}
    if card_kind(raw) == "agentvault":
        return parse_model(AgentCard, raw, **where)
    card = read_card(raw, card_url)
    usable = sorted(card.usable(), key=lambda i: PREFERENCE.index(i.dialect))
    chosen = next((i for i in usable if i.dialect == dialect), usable[0] if usable else None)
    if chosen is None:
        raise errors.ProtocolViolationError(_nothing_usable(card), **where)
    provider = raw.get("provider") if isinstance(raw.get("provider"), dict) else {}
    data = {
        "name": raw.get("name") or "unnamed agent",
        "url": chosen.url,
        "description": raw.get("description"),
        "agent_version": raw.get("version"),
        "provider": {"name": provider.get("organization") or provider.get("name"), "url": provider.get("url")}
        if provider else None,
        "capabilities": raw.get("capabilities") if isinstance(raw.get("capabilities"), dict) else {},
        "auth_schemes": [AuthScheme(scheme=s) for s in card.auth_schemes],
        "skills": raw.get("skills") if isinstance(raw.get("skills"), list) else None,
    }
    return parse_model(AgentCard, data, **where)


def _nothing_usable(card: DiscoveredCard, dialect: str | None = None) -> str:
    offered = "; ".join(i.describe() for i in card.interfaces) or "no endpoint at all"
    wanted = f"no {dialect} endpoint" if dialect else "no endpoint this provider can speak"
    return (f"the agent card at {errors.redact_url(card.url)} lists {wanted} (it offers: {offered}); "
            "supported: JSON-RPC 1.0, HTTP+JSON 1.0, JSON-RPC 0.3 and AgentVault")


def _path(url: str) -> str:
    return urlsplit(url).path.rstrip("/") or "/"


def choose(card: DiscoveredCard, *, dialect: str | None = None, endpoint_hint: str | None = None) -> Discovered:
    """Pick the endpoint and dialect from a card (see the module doc); raise if nothing fits."""
    where: dict[str, Any] = {"agent_url": card.url, "method": CARD_METHOD}
    usable = sorted(card.usable(), key=lambda i: PREFERENCE.index(i.dialect))
    if dialect:
        usable = [i for i in usable if i.dialect == dialect]
    if not usable and dialect == "agentvault" and isinstance(card.raw.get("url"), str):
        # The connection says AgentVault: a card's plain ``url`` is its endpoint, whatever else it lacks.
        return Discovered(dialect, urljoin(card.url, card.raw["url"]), card)
    if not usable:
        raise errors.ProtocolViolationError(_nothing_usable(card, dialect), **where)
    if endpoint_hint:
        matching = [i for i in usable if _path(i.url) == _path(endpoint_hint)]
        if matching:
            return Discovered(cast(str, matching[0].dialect), endpoint_hint, card)  # usable: has a dialect
    return Discovered(cast(str, usable[0].dialect), usable[0].url, card)


def card_urls(url: str) -> list[str]:
    """Where to look for the card of ``url`` (a card URL, a base URL or an endpoint), in order."""
    home = origin(url)
    candidates = [url] if urlsplit(url).path.endswith(".json") else []
    for path in CARD_PATHS:
        if home + path not in candidates:
            candidates.append(home + path)
    return candidates


def take_card_answer(url: str, status: int, content_type: str | None, body: Any, tried: list[str]) -> DiscoveredCard | None:
    """One answer: the card, or None (and a note in ``tried``) to try the next place."""
    if status in (404, 410):
        tried.append(f"{errors.redact_url(url)} (HTTP {status})")
        return None
    raise_for_http_status(status, agent_url=url, method=CARD_METHOD, task_id=None, body=body,
                          hint="the agent refused its card; check the connection's URL and dialect")
    if not isinstance(body, dict):  # the content type is not checked: static servers label cards loosely
        tried.append(f"{errors.redact_url(url)} (not a JSON object; content type {content_type or 'none'})")
        return None
    return read_card(body, url)


def finish_discovery(card: DiscoveredCard | None, url: str, tried: list[str], auth: Auth, dialect: str | None,
            endpoint_hint: str | None) -> Discovered:
    if card is None:
        raise errors.ProtocolViolationError(f"no agent card found; tried {', '.join(tried)}", agent_url=url,
                                            method=CARD_METHOD)
    card.warnings.extend(auth_warnings(card, auth))
    return choose(card, dialect=dialect, endpoint_hint=endpoint_hint)
