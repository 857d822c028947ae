"""Agent cards the connection can trust: JWS signatures by its keys, and which endpoints a card may name."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from airflow_agentvault.hooks.agentvault import AgentVaultHook, ConnectionConfigError, settings_from_connection
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.auth import ApiKeyAuth
from airflow_agentvault.protocol.card_trust import CardTrust, check_endpoint, check_signature, public_key_set
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects.cards import read_card
from airflow_agentvault.protocol.exchange import Lookup

from fakes import set_connection

pytestmark = pytest.mark.respx(assert_all_called=False)

BASE = "http://agent.test:8000"
CARD_URL = f"{BASE}/.well-known/agent-card.json"
OWN = (CARD_URL, f"{BASE}/a2a/")
CARD = {
    "name": "signed agent", "description": "", "version": "1.0",
    "supportedInterfaces": [{"url": f"{BASE}/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
    "capabilities": {"streaming": True}, "skills": [],
}


def new_key(kid: str) -> tuple[Any, dict[str, Any]]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid}


KEY, PUBLIC = new_key("key-1")
OTHER_KEY, OTHER_PUBLIC = new_key("key-1")  # the same key id, another key


def signed(card: dict[str, Any], key: Any = KEY, **header: Any) -> dict[str, Any]:
    """``card`` with a detached JWS over its canonical JSON (without empty values), as a2a-sdk signs."""
    header = {"alg": "ES256", "kid": "key-1", "typ": "JOSE", **header}
    payload = rfc8785.dumps({k: v for k, v in card.items() if v not in ("", [], {})})
    token = jwt.api_jws.encode(payload, key, algorithm=header["alg"], headers=header)
    protected, _, signature = token.split(".")
    return {**card, "signatures": [{"protected": protected, "signature": signature}]}


def trust(**kw: Any) -> CardTrust:
    keys = kw.pop("keys", [PUBLIC])
    return CardTrust(card_keys=public_key_set(keys), **kw)


def run(program, lookups: dict[str, list[str]] | None = None):
    """Run a routine that only resolves host names (answered from ``lookups``)."""
    answer = None
    try:
        while True:
            effect = program.send(answer)
            assert isinstance(effect, Lookup), effect
            answer = (lookups or {})[effect.host]
    except StopIteration as done:
        return done.value


def verify(raw: dict[str, Any], card_trust: CardTrust) -> str:
    client = AgentClient(f"{BASE}/a2a/")
    return client.run(check_signature(client.agent, read_card(raw, CARD_URL), card_trust, OWN))


# -- signatures ------------------------------------------------------------------------------------------------


def test_a_signed_card_verifies_with_the_connections_key():
    assert verify(signed(CARD), trust()) == "card signature verified with the connection's key key-1 (ES256)"


def test_a_tampered_card_is_a_clear_error():
    card = signed(CARD)
    card["supportedInterfaces"] = [{"url": "http://10.0.0.9/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]
    with pytest.raises(errors.CardSignatureError, match=r"signature 1 \(key id 'key-1', ES256\): does not match "
                       r"the card \(changed after signing, or signed with another key\)") as caught:
        verify(card, trust())
    assert caught.value.agent_url == CARD_URL and PUBLIC["x"] not in str(caught.value)


def test_another_key_under_the_same_id_does_not_verify():
    with pytest.raises(errors.CardSignatureError, match="does not match the card"):
        verify(signed(CARD, OTHER_KEY), trust())


def test_an_unknown_key_id_names_the_settings_that_help():
    with pytest.raises(errors.CardSignatureError, match=r"key id 'key-9'.*no such key in the connection's card_keys \[agent"):
        verify(signed(CARD, kid="key-9"), trust())
    with pytest.raises(errors.CardSignatureError, match=r"card_keys \(trust_card_jwks would fetch the card's jku\)"):
        verify(signed(CARD, kid="key-9", jku=f"{BASE}/jwks.json"), trust())


def test_any_of_several_signatures_may_verify():
    bad = signed(CARD, OTHER_KEY, kid="key-2")["signatures"]
    card = signed(CARD)
    card["signatures"] = bad + card["signatures"]
    assert "key-1" in verify(card, trust(keys=[PUBLIC, {**OTHER_PUBLIC, "kid": "other"}]))


def test_a_symmetric_algorithm_is_refused_whatever_the_key():
    card = signed(CARD, key=b"a shared secret of at least 32 bytes!", alg="HS256")
    with pytest.raises(errors.CardSignatureError, match="algorithm not accepted"):
        verify(card, trust())


def test_a_malformed_signature_is_an_error():
    with pytest.raises(errors.CardSignatureError, match="signature 1 is malformed"):
        verify({**CARD, "signatures": [{"protected": "%%%", "signature": "x"}]}, trust())
    with pytest.raises(errors.CardSignatureError, match="'signatures' is not a list"):
        verify({**CARD, "signatures": "yes"}, trust())


def test_unsigned_cards_pass_unless_required():
    assert verify(CARD, trust()) == "card unsigned (allowed: require_signed_card is off)"
    with pytest.raises(errors.CardSignatureError, match="not signed and the connection sets require_signed_card"):
        verify(CARD, trust(require_signed_card=True))


def test_a_signed_card_without_keys_to_check_it():
    assert "signature not checked (the connection names no keys" in verify(signed(CARD), trust(keys=None))
    with pytest.raises(errors.CardSignatureError, match="names no key to verify it with"):
        verify(signed(CARD), trust(keys=None, require_signed_card=True))


def test_a_1x_card_served_with_03_fields_verifies_over_its_10_fields():
    card = {**CARD, "securitySchemes": {"k": {"apiKeySecurityScheme": {"location": "header", "name": "X-K"}}},
            "skills": [{"id": "s", "name": "s", "tags": ["t"]}]}
    served = signed(card)
    served.update(url=f"{BASE}/", protocolVersion="0.3", preferredTransport="JSONRPC")  # what the SDK merges in
    served["securitySchemes"]["k"].update({"type": "apiKey", "in": "header", "name": "X-K"})
    served["skills"] = [{**served["skills"][0], "security": [{"k": []}]}]
    assert "verified" in verify(served, trust())
    served["skills"][0]["name"] = "changed"
    with pytest.raises(errors.CardSignatureError):
        verify(served, trust())


def test_the_cards_key_set_is_fetched_only_when_trusted_and_without_credentials(requests_mock):
    jwks = requests_mock.get(f"{BASE}/jwks.json", json={"keys": [PUBLIC]})
    card = signed(CARD, jku=f"{BASE}/jwks.json")
    with pytest.raises(errors.CardSignatureError, match="trust_card_jwks would fetch"):
        verify(card, trust(keys=[{**OTHER_PUBLIC, "kid": "other"}]))
    client = AgentClient(f"{BASE}/a2a/", auth=ApiKeyAuth(key="s3cret"))
    note = client.run(check_signature(client.agent, read_card(card, CARD_URL), trust(keys=None, trust_card_jwks=True),
                                      OWN))
    assert note == "card signature verified with the card's key set key-1 (ES256)"
    assert "X-Api-Key" not in jwks.last_request.headers


def test_the_cards_key_set_on_another_origin_follows_the_endpoint_rule(requests_mock):
    card = signed(CARD, jku="https://keys.example/jwks.json")
    with pytest.raises(errors.UntrustedEndpointError, match=r"key set \(jku\) https://keys.example/jwks.json"):
        verify(card, trust(keys=None, trust_card_jwks=True))
    requests_mock.get("https://keys.example/jwks.json", json={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})
    with pytest.raises(errors.CardSignatureError, match="key set at https://keys.example/jwks.json is unusable"):
        verify(card, trust(keys=None, trust_card_jwks=True, allow_other_origins=True, allow_private_networks=True))


# -- the connection's key set ----------------------------------------------------------------------------------


def test_key_sets_are_read_in_any_common_shape():
    expected = public_key_set({"keys": [PUBLIC]})
    assert public_key_set(json.dumps(PUBLIC)) == public_key_set([PUBLIC]) == expected
    assert public_key_set(None) == public_key_set("") == ""


@pytest.mark.parametrize(("value", "why"), [
    ("{not json", "is not JSON"),
    ({"kty": "oct", "k": "c2VjcmV0"}, "key 1 is a private or symmetric key"),
    ({**PUBLIC, "d": "cHJpdmF0ZQ"}, "key 1 is a private or symmetric key"),
    ({"kty": "EC", "crv": "P-256"}, "key 1 is not a usable public JWK"),
    (["x"], "key 1 is not a JWK object"),
])
def test_a_bad_key_set_is_a_connection_error_that_quotes_no_key(value, why):
    with pytest.raises(ConnectionConfigError, match=f"extra 'card_keys' {why}") as caught:
        settings_from_connection("c", f"{BASE}/", None, None, {"card_keys": value})
    assert "cHJpdmF0ZQ" not in str(caught.value) and "c2VjcmV0" not in str(caught.value)


# -- endpoints -------------------------------------------------------------------------------------------------


def endpoint(url: str, lookups: dict[str, list[str]] | None = None, **kw: Any) -> str:
    return run(check_endpoint(AgentClient(f"{BASE}/a2a/").agent, url, CardTrust(**kw), OWN), lookups)


def test_the_connections_own_origin_is_always_allowed_whatever_its_range():
    assert endpoint("http://AGENT.test:8000/other") == "endpoint http://agent.test:8000/other is on the connection's origin"
    own = ("http://127.0.0.1:5000/",)
    assert "connection's origin" in run(check_endpoint(AgentClient(own[0]).agent, "http://127.0.0.1:5000/a2a", CardTrust(),
                                                       own))


def test_another_origin_is_refused_by_default_naming_the_setting():
    with pytest.raises(errors.UntrustedEndpointError, match=r"names the endpoint http://agent.test:9000/, on another "
                       r"origin than the connection's \(http://agent.test:8000\); not used \(extra "
                       r"allow_other_origins allows it\)"):
        endpoint("http://agent.test:9000/")


@pytest.mark.parametrize("url", [
    "http://10.1.2.3/a2a", "http://192.168.0.7:8080/", "http://127.0.0.1:9/", "http://169.254.169.254/latest",
    "http://[fd12:3456::1]/", "http://[fe80::1]/", "http://[::1]:8000/", "http://[::ffff:10.0.0.1]/",
    "http://100.64.0.1/", "http://0.0.0.0:8000/",
])
def test_private_loopback_link_local_and_unique_local_addresses_are_refused(url):
    with pytest.raises(errors.UntrustedEndpointError, match="private, loopback, link-local or unique-local address"
                       r"\); not used \(extra allow_private_networks allows it\)"):
        endpoint(url, {"agent.test": ["203.0.113.5"]}, allow_other_origins=True)


def test_a_host_name_resolving_to_a_private_address_is_refused():
    lookups = {"internal.example": ["93.184.216.34", "10.0.0.8"], "agent.test": ["203.0.113.5"]}
    with pytest.raises(errors.UntrustedEndpointError, match="resolves to 10.0.0.8"):
        endpoint("https://internal.example/a2a", lookups, allow_other_origins=True)


def test_a_public_endpoint_on_another_origin_is_used_when_allowed():
    assert endpoint("https://agents.example/a2a", {"agents.example": ["93.184.216.34"], "agent.test": ["10.0.0.5"]},
                    allow_other_origins=True) \
        == "endpoint https://agents.example/a2a is on another origin (allowed), at public addresses"


def test_the_connections_own_addresses_stay_allowed_on_another_port():
    lookups = {"agent.test": ["10.0.0.5"]}
    assert "allowed" in endpoint("http://10.0.0.5:9000/", lookups, allow_other_origins=True)


def test_private_networks_when_allowed():
    assert "private networks allowed" in endpoint("http://10.1.2.3/", allow_other_origins=True,
                                                  allow_private_networks=True)


def test_a_host_that_does_not_resolve_is_unreachable_not_trusted():
    with pytest.raises(errors.AgentUnreachableError, match="cannot resolve 'gone.example'"):
        endpoint("http://gone.example/", {"gone.example": []}, allow_other_origins=True)


# -- through the hook ------------------------------------------------------------------------------------------

ELSEWHERE_CARD = {**CARD, "supportedInterfaces": [
    {"url": "http://10.0.0.9:8000/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]}


def hook(monkeypatch, **extra: Any) -> AgentVaultHook:
    set_connection(monkeypatch, "trust_test", f"{BASE}/", dialect="auto", **extra)
    return AgentVaultHook("trust_test")


def test_the_hook_refuses_a_card_sending_it_into_a_private_network(monkeypatch, requests_mock):
    requests_mock.get(CARD_URL, json=ELSEWHERE_CARD)
    monkeypatch.setattr("airflow_agentvault.protocol.client.addresses_of", {"agent.test": ["203.0.113.5"]}.get)
    with pytest.raises(errors.UntrustedEndpointError, match="allow_other_origins"):
        hook(monkeypatch).get_client()
    with pytest.raises(errors.UntrustedEndpointError, match="allow_private_networks"):
        hook(monkeypatch, allow_other_origins=True).get_client()
    assert hook(monkeypatch, allow_other_origins=True, allow_private_networks=True).get_client().rpc_url \
        == "http://10.0.0.9:8000/"


def test_the_hook_requires_a_signature_when_told(monkeypatch, requests_mock):
    requests_mock.get(CARD_URL, json=CARD)
    with pytest.raises(errors.CardSignatureError, match="not signed"):
        hook(monkeypatch, require_signed_card=True).get_client()
    requests_mock.get(CARD_URL, json=signed(CARD))
    keys = json.dumps({"keys": [PUBLIC]})
    assert hook(monkeypatch, require_signed_card=True, card_keys=keys).get_client().rpc_url == f"{BASE}/"


async def test_the_async_hook_checks_the_same(monkeypatch, respx_mock):
    respx_mock.get(CARD_URL).mock(return_value=httpx.Response(200, json=signed(CARD, OTHER_KEY)))
    with pytest.raises(errors.CardSignatureError, match="does not match the card"):
        await hook(monkeypatch, card_keys=[PUBLIC]).aget_client()


def test_test_connection_says_what_it_checked(monkeypatch, requests_mock):
    requests_mock.get(CARD_URL, json=signed(CARD))
    ok, message = hook(monkeypatch, card_keys=[PUBLIC]).test_connection()
    assert ok and (
        "; checked: card signature verified with the connection's key key-1 (ES256), endpoint http://agent.test:8000/ "
        "is on the connection's origin; the agent does not offer push notifications (push: off)") in message
    requests_mock.get(CARD_URL, json=ELSEWHERE_CARD)
    ok, message = hook(monkeypatch).test_connection()
    assert not ok and "on another origin" in message and "allow_other_origins" in message


def test_test_connection_of_a_fixed_dialect_says_its_endpoint_is_the_connections(monkeypatch, requests_mock):
    requests_mock.get(f"{BASE}/agent-card.json", json={"name": "AV", "url": f"{BASE}/a2a/",
                                                      "capabilities": {"a2aVersion": "1.0"}})
    set_connection(monkeypatch, "trust_av", f"{BASE}/a2a/")
    ok, message = AgentVaultHook("trust_av").test_connection()
    assert ok and message.endswith(f"; checked: endpoint {BASE}/a2a/ as the connection names it (no card endpoint used)")


async def test_both_runners_resolve_a_host_name_for_the_check():
    """``localhost`` really resolved (by the blocking and the asyncio runner) is a loopback address."""
    own = ("http://127.0.0.2:8000/",)
    allowed = CardTrust(allow_other_origins=True)
    sync = AgentClient(own[0])
    with pytest.raises(errors.UntrustedEndpointError, match="resolves to 127.0.0.1"):
        sync.run(check_endpoint(sync.agent, "http://localhost:9000/", allowed, own))
    async with AsyncAgentClient(own[0]) as client:
        with pytest.raises(errors.UntrustedEndpointError, match="resolves to 127.0.0.1"):
            await client.run(check_endpoint(client.agent, "http://localhost:9000/", allowed, own))


def test_test_connection_checks_what_a_fixed_dialect_uses(monkeypatch, requests_mock):
    """A fixed dialect with its endpoint uses nothing from the card, so the card's other host is no refusal."""
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", json=ELSEWHERE_CARD)
    set_connection(monkeypatch, "trust_fixed", f"{BASE}/rpc", dialect="a2a-1.0")
    ok, message = AgentVaultHook("trust_fixed").test_connection()
    assert ok and f"checked: endpoint {BASE}/rpc as the connection names it (no card endpoint used)" in message
