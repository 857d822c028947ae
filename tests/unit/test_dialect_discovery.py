"""Agent-card discovery (``dialect: auto``) and the dialect registry, against captured and hand-made cards."""

from __future__ import annotations

import json

import httpx
import pytest
import requests

from airflow_agentvault.connection_form import DIALECT_CHOICES
from airflow_agentvault.protocol import errors, operations
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.auth import NO_AUTH, ApiKeyAuth, Auth, BearerAuth, OAuth2ClientCredentials
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects import CHOICES, DIALECTS, codec_for
from airflow_agentvault.protocol.dialects.a2a_rest import RestCodec
from airflow_agentvault.protocol.dialects.a2a_v10 import V10Codec
from airflow_agentvault.protocol.dialects.agentvault import AgentVaultCodec
from airflow_agentvault.protocol.dialects.cards import agent_card_from, auth_warnings, card_urls, choose, read_card

from a2a_wire import body, json_line, sections

BASE = "http://agent.test:8000"
V10_CARD = json.loads(body("01-agent-card.txt"))
V03_CARD = json.loads(json_line(sections("18-sdk0326-server.txt")["0.3.26 agent card paths"]))
AV_CARD = {
    "schemaVersion": "1.0", "humanReadableId": "ref/agent", "agentVersion": "0.1.0", "name": "Reference Agent",
    "url": "http://localhost:8000/a2a/", "capabilities": {"a2aVersion": "1.0"}, "authSchemes": [{"scheme": "none"}],
}
#: What a 1.x SDK serves when it also lists a 0.3 JSON-RPC interface: the 0.3 fields merged in.
MERGED_CARD = {
    "name": "both", "version": "1",
    "supportedInterfaces": [
        {"url": f"{BASE}/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
        {"url": f"{BASE}/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
        {"url": f"{BASE}/", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        {"url": f"{BASE}/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
    ],
    "url": f"{BASE}/", "protocolVersion": "0.3", "preferredTransport": "JSONRPC",
}


def test_the_form_offers_exactly_the_registered_dialects_and_auto():
    assert tuple(DIALECT_CHOICES) == CHOICES == ("agentvault", "a2a-0.3", "a2a-1.0", "a2a-rest", "auto")


@pytest.mark.parametrize("dialect, codec_cls", [
    ("agentvault", AgentVaultCodec), ("a2a-1.0", V10Codec), ("a2a-rest", RestCodec),
])
async def test_factories_build_the_dialects_clients_with_the_common_options(dialect, codec_cls):
    sync = AgentClient("http://a/", codec=codec_for(dialect), read_timeout=3, connect_timeout=2, verify=False)
    assert type(sync.agent.codec) is codec_cls and sync.dialect == dialect
    assert (sync.rpc_url, sync.agent.read_timeout, sync.agent.connect_timeout) == ("http://a/", 3, 2)
    async with AsyncAgentClient("http://a/", codec=codec_for(dialect), read_timeout=3) as client:
        assert type(client.agent.codec) is codec_cls and client.dialect == dialect
        assert client.agent.read_timeout == 3
    assert set(DIALECTS) == {"agentvault", "a2a-0.3", "a2a-1.0", "a2a-rest"}


def test_an_unknown_dialect_names_the_choices():
    with pytest.raises(ValueError, match="a2a-0.3"):
        codec_for("a2a-2.0")


# -- reading cards ------------------------------------------------------------------------------------------


def test_a_10_card_prefers_jsonrpc_and_keeps_rest_available():
    card = read_card(V10_CARD, f"{BASE}/.well-known/agent-card.json")
    assert card.kind == "a2a-1.0"
    assert [(i.dialect, i.url) for i in card.interfaces] == [
        ("a2a-1.0", "http://127.0.0.1:56151/"), ("a2a-rest", "http://127.0.0.1:56151/rest")]
    assert choose(card) == ("a2a-1.0", "http://127.0.0.1:56151/", card)
    assert choose(card, dialect="a2a-rest").rpc_url == "http://127.0.0.1:56151/rest"


def test_the_connections_endpoint_picks_the_interface_and_is_kept():
    card = read_card(V10_CARD, f"{BASE}/.well-known/agent-card.json")
    found = choose(card, endpoint_hint=f"{BASE}/rest/")
    assert (found.dialect, found.rpc_url) == ("a2a-rest", f"{BASE}/rest/")
    # A path the card does not list: the card's preferred endpoint.
    assert choose(card, endpoint_hint=f"{BASE}/a2a/").rpc_url == "http://127.0.0.1:56151/"


def test_a_card_without_the_wanted_dialect_says_what_it_offers():
    card = read_card(V10_CARD, f"{BASE}/.well-known/agent-card.json")
    with pytest.raises(errors.ProtocolViolationError, match="lists no a2a-0.3 endpoint.*JSONRPC 1.0.*HTTP\\+JSON 1.0"):
        choose(card, dialect="a2a-0.3")


def test_a_merged_1x_card_lists_the_03_interface_too_and_ignores_grpc():
    card = read_card(MERGED_CARD, f"{BASE}/.well-known/agent-card.json")
    assert card.kind == "a2a-1.0"
    assert [i.dialect for i in card.interfaces] == ["a2a-1.0", "a2a-rest", "a2a-0.3", None]
    assert choose(card).dialect == "a2a-1.0" and choose(card, dialect="a2a-0.3").rpc_url == f"{BASE}/"


def test_a_03_card():
    card = read_card(V03_CARD, f"{BASE}/.well-known/agent-card.json")
    assert card.kind == "a2a-0.3"
    assert choose(card) == ("a2a-0.3", "http://127.0.0.1:56233/", card)
    assert agent_card_from(V03_CARD, card.url).name == "slow-test-agent"


def test_a_03_card_preferring_rest_still_offers_its_jsonrpc_interface():
    raw = {"name": "x", "url": f"{BASE}/v1", "protocolVersion": "0.3.0", "preferredTransport": "HTTP+JSON",
           "additionalInterfaces": [{"url": f"{BASE}/jsonrpc", "transport": "JSONRPC"}]}
    assert choose(read_card(raw, BASE + "/c.json")) == ("a2a-0.3", f"{BASE}/jsonrpc", read_card(raw, BASE + "/c.json"))


def test_an_agentvault_card():
    card = read_card(AV_CARD, f"{BASE}/agent-card.json")
    assert card.kind == "agentvault" and card.auth_schemes == ["none"]
    assert choose(card).rpc_url == "http://localhost:8000/a2a/"
    assert choose(card, endpoint_hint=f"{BASE}/a2a/").rpc_url == f"{BASE}/a2a/"


def test_card_urls_start_with_a_given_card_then_the_well_known_paths():
    assert card_urls(f"{BASE}/a2a/") == [f"{BASE}/.well-known/agent-card.json", f"{BASE}/.well-known/agent.json",
                                         f"{BASE}/agent-card.json"]
    assert card_urls("https://Agent.test:443/a2a/")[0] == "https://agent.test/.well-known/agent-card.json"
    assert card_urls("http://u:p@agent.test:8000/cards/x.json")[:2] == [
        "http://u:p@agent.test:8000/cards/x.json", f"{BASE}/.well-known/agent-card.json"]


# -- auth --------------------------------------------------------------------------------------------------


def warnings_for(raw, auth):
    return auth_warnings(read_card(raw, BASE + "/c.json"), auth)


def test_auth_warnings():
    key_card = {**V03_CARD, "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Agent-Key"}},
                "security": [{"key": []}]}
    assert warnings_for(key_card, NO_AUTH) == [
        "the agent card declares auth ['apiKey'] but the connection uses none: expect HTTP 401 unless the agent "
        "accepts it anyway"]
    assert "header 'X-Agent-Key'" in warnings_for(key_card, ApiKeyAuth(key="k"))[0]
    assert warnings_for(key_card, ApiKeyAuth(key="k", header="x-agent-key")) == []
    query_card = {**V03_CARD, "securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "key"}}}
    assert "query parameter" in warnings_for(query_card, ApiKeyAuth(key="k"))[0]


def test_10_security_schemes_and_requirements():
    card = {**V10_CARD, "securitySchemes": {
        "bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}},
        "oauth": {"oauth2SecurityScheme": {"flows": {}}},
        "unused": {"mtlsSecurityScheme": {}},
    }, "securityRequirements": [{"schemes": {"bearer": {"list": []}}}, {"schemes": {"oauth": {"list": []}}}]}
    assert read_card(card, BASE).auth_schemes == ["bearer", "oauth2"]
    assert warnings_for(card, BearerAuth(token="t")) == []
    assert warnings_for(card, OAuth2ClientCredentials(token_url="http://t", client_id="c", client_secret="s")) == []
    assert warnings_for(card, NO_AUTH)


def test_no_declared_auth_gives_no_warning():
    assert warnings_for(V10_CARD, ApiKeyAuth(key="k")) == []


# -- fetching (sync: requests-mock; async: respx) -----------------------------------------------------------


def discover(url: str, *, auth: Auth = NO_AUTH, **kwargs):
    client = AgentClient(url, auth=auth)
    return client.run(operations.discover(client.agent, url, **kwargs))


async def adiscover(url: str, *, auth: Auth = NO_AUTH, **kwargs):
    async with AsyncAgentClient(url, auth=auth) as client:
        return await client.run(operations.discover(client.agent, url, **kwargs))


def resolve(dialect: str, rpc_url: str | None, card_url: str):
    client = AgentClient(card_url)
    return client.run(operations.resolve(client.agent, dialect, rpc_url, card_url))


async def aresolve(dialect: str, rpc_url: str | None, card_url: str):
    async with AsyncAgentClient(card_url) as client:
        return await client.run(operations.resolve(client.agent, dialect, rpc_url, card_url))


def test_discover_walks_the_card_paths_past_404s(requests_mock):
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", status_code=404, text="Not Found")
    requests_mock.get(f"{BASE}/.well-known/agent.json", status_code=404, text="Not Found")
    requests_mock.get(f"{BASE}/agent-card.json", json=AV_CARD)
    found = discover(BASE, auth=BearerAuth(token="tok"), endpoint_hint=f"{BASE}/a2a/")
    assert (found.dialect, found.rpc_url) == ("agentvault", f"{BASE}/a2a/")
    assert found.card.url == f"{BASE}/agent-card.json"
    assert requests_mock.call_count == 3
    assert requests_mock.last_request.headers["Authorization"] == "Bearer tok"


def test_discover_without_any_card_says_where_it_looked(requests_mock):
    for path in ("/.well-known/agent-card.json", "/.well-known/agent.json", "/agent-card.json"):
        requests_mock.get(BASE + path, status_code=404)
    tried = "no agent card found; tried .*agent-card.json \\(HTTP 404\\)"
    with pytest.raises(errors.ProtocolViolationError, match=tried):
        discover(BASE)


def test_discover_stops_at_401_and_at_an_unreachable_agent(requests_mock):
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", status_code=401, json={"detail": "no"})
    with pytest.raises(errors.NotAuthorizedError):
        discover(BASE)
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", exc=requests.ConnectionError("Connection refused"))
    with pytest.raises(errors.AgentUnreachableError, match="GET agent card"):
        discover(BASE)


def test_discover_reports_auth_mismatch_as_warnings(requests_mock):
    card = {**V10_CARD, "securitySchemes": {"k": {"apiKeySecurityScheme": {"location": "header", "name": "X-K"}}}}
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", json=card)
    found = discover(BASE, auth=NO_AUTH)
    assert found.dialect == "a2a-1.0" and "declares auth ['apiKey']" in found.card.warnings[0]


async def test_adiscover_matches_discover(respx_mock):
    respx_mock.get(f"{BASE}/.well-known/agent-card.json").mock(return_value=httpx.Response(404))
    respx_mock.get(f"{BASE}/.well-known/agent.json").mock(return_value=httpx.Response(200, json=V03_CARD))
    found = await adiscover(f"{BASE}/")
    assert (found.dialect, found.rpc_url, found.card.kind) == ("a2a-0.3", "http://127.0.0.1:56233/", "a2a-0.3")


def test_resolve_reads_nothing_for_a_fixed_dialect_with_an_endpoint(requests_mock):
    found = resolve("a2a-rest", f"{BASE}/rest", f"{BASE}/agent-card.json")
    assert found == ("a2a-rest", f"{BASE}/rest", None) and requests_mock.call_count == 0


def test_resolve_takes_a_fixed_dialects_endpoint_from_the_card(requests_mock):
    requests_mock.get(f"{BASE}/card.json", json=V10_CARD)
    assert resolve("a2a-rest", None, f"{BASE}/card.json")[:2] == ("a2a-rest", "http://127.0.0.1:56151/rest")


async def test_aresolve_auto(respx_mock):
    respx_mock.get(f"{BASE}/agent-card.json").mock(return_value=httpx.Response(200, json=V10_CARD))
    found = await aresolve("auto", f"{BASE}/rest", f"{BASE}/agent-card.json")
    assert found[:2] == ("a2a-rest", f"{BASE}/rest")


def test_a2a_fetch_card_normalises_any_card(requests_mock):
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", json=V10_CARD)
    card = AgentClient(f"{BASE}/", codec=codec_for("a2a-0.3")).fetch_card(f"{BASE}/.well-known/agent-card.json")
    assert card.name == "slow-test-agent" and card.url == "http://127.0.0.1:56151/"  # no 0.3 interface: preferred


def test_the_dialects_import_nothing_from_airflow():
    import subprocess
    import sys

    code = ("import sys, airflow_agentvault.protocol.dialects; "
            "sys.exit(any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_interfaces_of_other_bindings_are_named_by_their_own_address():
    raw = {"name": "grpc only", "supportedInterfaces": [
        {"url": "127.0.0.1:22101", "protocolBinding": "GRPC", "protocolVersion": "1.0"}]}
    card = read_card(raw, "http://127.0.0.1:22100/.well-known/agent-card.json")
    with pytest.raises(errors.ProtocolViolationError) as info:
        choose(card)
    assert "GRPC 1.0 at 127.0.0.1:22101 (not spoken by this provider)" in str(info.value)
    assert "lists no endpoint this provider can speak" in str(info.value)
