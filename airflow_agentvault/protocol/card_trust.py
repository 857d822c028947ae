"""
Whether an agent card may be believed, and whether the endpoint it names may be used.

An agent answers with a card, and the card names the endpoint the client then talks to: a card could
send the client to another host, or to an address inside the user's network. So, by
:class:`CardTrust` (the connection's settings, safe by default):

* **Signatures** (A2A ``signatures: [{protected, signature}]``): a JWS with a detached payload over the
  RFC 8785 canonical JSON of the card without ``signatures`` and without empty values (what a2a-sdk
  signs). A card passes when one signature verifies with a public key of the connection's key set
  (``card_keys``), or, with ``trust_card_jwks``, of the set the signature's ``jku`` names (fetched
  without the connection's credentials, under the endpoint rule below). A signed card that fails is a
  :class:`~errors.CardSignatureError`; an unsigned one passes unless ``require_signed_card``. A 1.x card
  that also carries A2A 0.3 fields for older clients is checked as its 1.0 card too: SDKs sign the
  1.0 card and add the 0.3 fields when serving it (the provider reads a 1.x card's endpoints from its
  1.0 fields only).
* **Endpoints**: one on the connection's own origin is always used. Another origin needs
  ``allow_other_origins``; then its host is resolved, and any address that is not global (private,
  loopback, link-local, unique-local, reserved) and not one the connection's own host resolves to
  needs ``allow_private_networks`` (:class:`~errors.UntrustedEndpointError`).

Every check returns a line saying what it checked, for ``test_connection`` and the log.
"""

from __future__ import annotations

import binascii
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import jwt
import rfc8785
from jwt.utils import base64url_decode, base64url_encode

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.auth import NO_AUTH
from airflow_agentvault.protocol.dialects.cards import DiscoveredCard
from airflow_agentvault.protocol.exchange import CARD, Lookup, Program, Request, origin
from airflow_agentvault.protocol.operations import Agent, fetch

VERIFY = "verify agent card"
#: Public-key algorithms only: a symmetric (HS*) key would be a secret, and accepting "none" or a
#: symmetric algorithm for a public key is the classic JWS confusion.
ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA")
#: A 1.x card's fields for A2A 0.3 clients, outside what SDKs sign (see the module doc).
COMPAT_FIELDS = ("url", "preferredTransport", "protocolVersion", "additionalInterfaces", "security",
                 "supportsAuthenticatedExtendedCard")
SCHEME_KINDS = ("apiKeySecurityScheme", "httpAuthSecurityScheme", "oauth2SecurityScheme",
                "openIdConnectSecurityScheme", "mtlsSecurityScheme")


@dataclass(frozen=True)
class CardTrust:
    """What the connection trusts: its public keys (a JWKS as JSON text) and what it allows."""

    card_keys: str = ""
    require_signed_card: bool = False
    trust_card_jwks: bool = False
    allow_other_origins: bool = False
    allow_private_networks: bool = False

    def keys(self) -> list[dict[str, Any]]:
        return json.loads(self.card_keys)["keys"] if self.card_keys else []


def public_key_set(value: Any) -> str:
    """
    A key set as given (a JWKS, a list of JWKs or one JWK; JSON text or parsed) -> JWKS JSON text.

    Raises ValueError naming what is wrong (never quoting a key): not JSON, not a key, a private or
    symmetric key (a secret has no place in a key set that is shown in the connection form).
    """
    if value in (None, "", [], {}):
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("is not JSON (a JWKS {\"keys\": [...]}, a list of JWKs or one JWK)") from None
    keys = value.get("keys") if isinstance(value, dict) and "keys" in value else value
    keys = keys if isinstance(keys, list) else [keys]
    for number, key in enumerate(keys, 1):
        if not isinstance(key, dict):
            raise ValueError(f"key {number} is not a JWK object")
        if key.get("kty") == "oct" or "d" in key or "k" in key:
            raise ValueError(f"key {number} is a private or symmetric key; give only public keys")
        try:
            jwt.PyJWK(key)
        except jwt.PyJWTError as exc:
            raise ValueError(f"key {number} is not a usable public JWK ({type(exc).__name__})") from None
    return json.dumps({"keys": keys}, sort_keys=True)


# -- what is signed -----------------------------------------------------------------------------------------


def _without_empty(value: Any) -> Any:
    """Empty strings, lists and objects dropped, recursively (as a2a-sdk does before canonicalising)."""
    if isinstance(value, dict):
        kept = {k: v for k, v in ((k, _without_empty(v)) for k, v in value.items()) if v is not None}
        return kept or None
    if isinstance(value, list):
        items = [v for v in (_without_empty(v) for v in value) if v is not None]
        return items or None
    return None if value == "" else value


def _as_10_card(raw: dict[str, Any]) -> dict[str, Any]:
    """A 1.x card without the A2A 0.3 fields an SDK merged in when serving it."""
    card = {k: v for k, v in raw.items() if k not in COMPAT_FIELDS}
    if isinstance(card.get("skills"), list):
        card["skills"] = [{k: v for k, v in s.items() if k != "security"} if isinstance(s, dict) else s
                          for s in card["skills"]]
    if isinstance(card.get("securitySchemes"), dict):
        card["securitySchemes"] = {
            name: {k: v for k, v in s.items() if k in SCHEME_KINDS} if isinstance(s, dict) else s
            for name, s in card["securitySchemes"].items()}
    return card


def signed_payloads(raw: dict[str, Any]) -> list[bytes]:
    """The canonical bytes a signature may cover: the card as served, and a 1.x card's 1.0 fields."""
    unsigned = {k: v for k, v in raw.items() if k != "signatures"}
    forms = [unsigned]
    if isinstance(raw.get("supportedInterfaces"), list) and any(k in raw for k in COMPAT_FIELDS):
        forms.append(_as_10_card(unsigned))
    payloads = []
    for form in forms:
        try:
            payloads.append(rfc8785.dumps(_without_empty(form) or {}))
        except (rfc8785.CanonicalizationError, ValueError, TypeError):
            continue
    return payloads


@dataclass(frozen=True)
class Signature:
    protected: str
    signature: str
    header: dict[str, Any]  # the protected header, decoded

    @property
    def kid(self) -> str | None:
        return str(self.header["kid"]) if self.header.get("kid") is not None else None

    def name(self, number: int) -> str:
        return f"signature {number} (key id {self.kid!r}, {self.header.get('alg')})"


def signatures_of(card: DiscoveredCard) -> list[Signature]:
    """The card's signatures with their protected headers; a malformed one is a CardSignatureError."""
    found = card.raw.get("signatures")
    if found in (None, []):
        return []
    where: dict[str, Any] = {"agent_url": card.url, "method": VERIFY}
    if not isinstance(found, list):
        raise errors.CardSignatureError("the card's 'signatures' is not a list", **where)
    signatures = []
    for number, entry in enumerate(found, 1):
        try:
            header = json.loads(base64url_decode(str(entry["protected"]).encode()))
            signature = Signature(str(entry["protected"]), str(entry["signature"]), header)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise errors.CardSignatureError(f"signature {number} is malformed (no readable protected header)",
                                            **where) from None
        if not isinstance(header, dict):
            raise errors.CardSignatureError(f"signature {number}'s protected header is not an object", **where)
        signatures.append(signature)
    return signatures


def verifies(signature: Signature, payloads: Iterable[bytes], key: dict[str, Any]) -> bool:
    """Whether ``signature`` is valid over one of ``payloads`` with the public JWK ``key``."""
    alg = signature.header.get("alg")
    if alg not in ALGORITHMS or key.get("alg") not in (None, alg):
        return False
    try:
        verifier = jwt.PyJWK(key, algorithm=alg)
    except jwt.PyJWTError:
        return False
    for payload in payloads:
        token = f"{signature.protected}.{base64url_encode(payload).decode()}.{signature.signature}"
        try:
            jwt.api_jws.decode(token, key=verifier, algorithms=[alg])
        except jwt.PyJWTError:
            continue
        return True
    return False


def _matching(keys: Sequence[dict[str, Any]], kid: str | None) -> list[dict[str, Any]]:
    return [k for k in keys if kid is None or k.get("kid") == kid]


# -- the checks as routines -----------------------------------------------------------------------------------


def check_signature(agent: Agent, card: DiscoveredCard, trust: CardTrust, own: Sequence[str]) -> Program[str]:
    """Verify the card's signatures (see the module doc); return what was checked, or raise."""
    where: dict[str, Any] = {"agent_url": card.url, "method": VERIFY}
    signatures = signatures_of(card)
    if not signatures:
        if trust.require_signed_card:
            raise errors.CardSignatureError("the agent card is not signed and the connection sets "
                                            "require_signed_card", **where)
        return "card unsigned (allowed: require_signed_card is off)"
    own_keys = trust.keys()
    if not own_keys and not trust.trust_card_jwks:
        if trust.require_signed_card:
            raise errors.CardSignatureError("the agent card is signed but the connection names no key to verify "
                                            "it with (set card_keys, or trust_card_jwks)", **where)
        return "card signed, signature not checked (the connection names no keys: set card_keys)"
    payloads = signed_payloads(card.raw)
    causes = []
    for number, signature in enumerate(signatures, 1):
        keys = _matching(own_keys, signature.kid)
        source, jku = "the connection's key", signature.header.get("jku")
        if not keys and trust.trust_card_jwks and jku:
            keys = _matching((yield from _fetch_key_set(agent, card, str(jku), trust, own)), signature.kid)
            source = "the card's key set"
        if not keys:
            causes.append(f"{signature.name(number)}: no such key in the connection's card_keys" + (
                "" if not jku else " nor in the card's key set" if trust.trust_card_jwks else
                " (trust_card_jwks would fetch the card's jku)"))
            continue
        if any(verifies(signature, payloads, key) for key in keys):
            return f"card signature verified with {source} {signature.kid or '(no key id)'} ({signature.header['alg']})"
        causes.append(f"{signature.name(number)}: does not match the card (changed after signing, or signed "
                      "with another key)" if signature.header.get("alg") in ALGORITHMS else
                      f"{signature.name(number)}: algorithm not accepted (accepted: {', '.join(ALGORITHMS)})")
    raise errors.CardSignatureError(f"no valid signature on the agent card: {'; '.join(causes)}", **where)


def _fetch_key_set(agent: Agent, card: DiscoveredCard, jku: str, trust: CardTrust,
                   own: Sequence[str]) -> Program[list[dict[str, Any]]]:
    """The key set a signature's ``jku`` names, fetched without the connection's credentials."""
    jku = urljoin(card.url, jku)
    yield from check_endpoint(agent, jku, trust, own, what="key set (jku)")
    request = Request(CARD, "GET", jku, card.url)
    response = yield from fetch(replace(agent, auth=NO_AUTH), request)
    try:
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        keys: list[dict[str, Any]] = json.loads(public_key_set(json.loads(response.body)))["keys"]
    except ValueError as exc:
        raise errors.CardSignatureError(f"the card's key set at {errors.redact_url(jku)} is unusable ({exc})",
                                        agent_url=card.url, method=VERIFY) from None
    return keys


def _not_global(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    return not ip.is_global or ip.is_multicast


def _addresses(host: str) -> Program[list[str]]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        found: list[str] = yield Lookup(host)
        return found


def check_endpoint(agent: Agent, url: str, trust: CardTrust, own: Sequence[str], *,
                   what: str = "endpoint") -> Program[str]:
    """Whether a URL a card names may be used (see the module doc); return what was checked, or raise."""
    where: dict[str, Any] = {"agent_url": agent.endpoint, "method": VERIFY}
    ours = sorted({origin(u) for u in own if u})
    if origin(url) in ours:
        return f"{what} {errors.redact_url(url)} is on the connection's origin"
    if not trust.allow_other_origins:
        raise errors.UntrustedEndpointError(
            f"the agent card names the {what} {errors.redact_url(url)}, on another origin than the connection's "
            f"({', '.join(ours)}); not used (extra allow_other_origins allows it)", **where)
    if trust.allow_private_networks:
        return f"{what} {errors.redact_url(url)} is on another origin (allowed; private networks allowed too)"
    host = urlsplit(url).hostname or ""
    addresses = yield from _addresses(host)
    if not addresses:
        raise errors.AgentUnreachableError(f"cannot resolve {host!r} (the {what} the agent card names) to check it",
                                           **where)
    inside = {a for a in addresses if _not_global(a)}
    for own_host in sorted({urlsplit(u).hostname or "" for u in own if u} - {""}) if inside else ():
        inside -= set((yield from _addresses(own_host)))  # the connection's own addresses stay allowed
    if inside:
        raise errors.UntrustedEndpointError(
            f"the agent card names the {what} {errors.redact_url(url)}, whose host resolves to {', '.join(sorted(inside))} "
            "(a private, loopback, link-local or unique-local address); not used (extra allow_private_networks "
            "allows it)", **where)
    return f"{what} {errors.redact_url(url)} is on another origin (allowed), at public addresses"


def vet(agent: Agent, card: DiscoveredCard | None, endpoint: str, trust: CardTrust,
        own: Sequence[str]) -> Program[list[str]]:
    """Every check for one connection: the card's signature, then the endpoint to be used."""
    if card is None:  # a fixed dialect with its endpoint: nothing taken from a card
        return [f"endpoint {errors.redact_url(endpoint)} as the connection names it (no card endpoint used)"]
    signed = yield from check_signature(agent, card, trust, own)
    where = yield from check_endpoint(agent, endpoint, trust, own)
    return [signed, where]
