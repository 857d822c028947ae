"""The connection's ``dialect`` through the hook (``client``, ``aget_client``) and test_connection."""

from __future__ import annotations

import json
from unittest import mock

import httpx
import pytest

from airflow_agentvault.hooks.agentvault import AgentVaultHook, ConnectionConfigError, settings_from_connection
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.client import AgentClient

from a2a_wire import body
from fakes import set_connection

pytestmark = pytest.mark.respx(assert_all_called=False)

BASE = "http://agent.test:8000"
V10_CARD = json.loads(body("01-agent-card.txt"))
AV_CARD = {"name": "AV", "url": "http://localhost:8000/a2a/", "capabilities": {"a2aVersion": "1.0"},
           "authSchemes": [{"scheme": "apiKey"}]}
CONN = "dialect_test"
#: The captured card names its endpoints on 127.0.0.1:56151, another origin (and a loopback address) than
#: BASE: these connections allow that, as a connection to such a card must (tests/unit/test_card_trust.py).
ELSEWHERE = {"allow_other_origins": "true", "allow_private_networks": "true"}


def hook_for(monkeypatch, host, password=None, **extra) -> AgentVaultHook:
    set_connection(monkeypatch, CONN, host, password=password, **extra)
    hook = AgentVaultHook(CONN, read_timeout=7)
    hook._log = mock.MagicMock()
    return hook


def logged(hook, level: str) -> list[str]:
    return [call.args[0] % call.args[1:] for call in getattr(hook._log, level).call_args_list]


@pytest.mark.parametrize("given, expected", [(None, "agentvault"), ("", "agentvault"), (" A2A-1.0 ", "a2a-1.0"),
                                             ("auto", "auto"), ("a2a-rest", "a2a-rest")])
def test_settings_read_the_dialect(given, expected):
    extra = {} if given is None else {"dialect": given}
    assert settings_from_connection("c", f"{BASE}/a2a/", None, None, extra).dialect == expected


def test_an_unknown_dialect_names_the_field_and_the_choices():
    with pytest.raises(ConnectionConfigError, match="extra 'dialect' must be one of agentvault, a2a-0.3, a2a-1.0, "
                                                    "a2a-rest, auto, got 'a2a-2'"):
        settings_from_connection("c", f"{BASE}/a2a/", None, None, {"dialect": "a2a-2"})


@pytest.mark.parametrize("dialect, host", [
    ("a2a-1.0", f"{BASE}/a2a"), ("a2a-0.3", f"{BASE}/rpc"), ("a2a-rest", f"{BASE}/rest"), ("agentvault", f"{BASE}/a2a/"),
])
def test_a_fixed_dialect_with_an_endpoint_reads_no_card(monkeypatch, requests_mock, dialect, host):
    hook = hook_for(monkeypatch, host, dialect=dialect)
    client = hook.client
    assert isinstance(client, AgentClient) and client.dialect == dialect
    assert client.agent.read_timeout == 7 and requests_mock.call_count == 0
    assert client.rpc_url == host
    assert logged(hook, "info") == [f"Talking to agent {host} in the {dialect} dialect"]
    assert hook.client is client  # chosen and logged once


def test_a_fixed_dialect_with_a_base_url_finds_its_endpoint_in_the_card(monkeypatch, requests_mock):
    card = requests_mock.get(f"{BASE}/.well-known/agent-card.json", json=V10_CARD)
    hook = hook_for(monkeypatch, f"{BASE}/", dialect="a2a-rest", **ELSEWHERE)
    assert hook.client.dialect == "a2a-rest" and hook.client.rpc_url == "http://127.0.0.1:56151/rest"
    assert card.last_request.headers["A2A-Version"] == "1.0"
    assert f"Agent card at {BASE}/.well-known/agent-card.json names the endpoint http://127.0.0.1:56151/rest" \
        in logged(hook, "info")


def test_a_fixed_dialect_with_a_base_url_and_no_card_uses_the_url_as_given(monkeypatch, requests_mock):
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", status_code=404)
    requests_mock.get(f"{BASE}/.well-known/agent.json", status_code=404)
    requests_mock.get(f"{BASE}/agent-card.json", status_code=404)
    hook = hook_for(monkeypatch, f"{BASE}/", dialect="a2a-1.0")
    assert hook.client.dialect == "a2a-1.0" and hook.client.rpc_url == f"{BASE}/"


def test_auto_reads_the_card_and_logs_the_choice_once(monkeypatch, requests_mock):
    requests_mock.get(f"{BASE}/agent-card.json", status_code=404)
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", json=V10_CARD)
    hook = hook_for(monkeypatch, f"{BASE}/rest", password="k", auth_type="api_key", dialect="auto")
    client = hook.client
    assert client.dialect == "a2a-rest" and client.rpc_url == f"{BASE}/rest"
    assert client.agent.auth.headers() == {"X-Api-Key": "k"}
    assert hook.client is client
    assert logged(hook, "info") == [
        f"Agent card at {BASE}/.well-known/agent-card.json names the endpoint {BASE}/rest",
        f"Talking to agent {BASE}/rest in the a2a-rest dialect (chosen from its card)",
    ]
    assert logged(hook, "warning") == []
    assert requests_mock.call_count == 1  # the A2A well-known path first: no detour through AgentVault's


def test_auto_warns_when_the_card_wants_other_auth(monkeypatch, requests_mock):
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", status_code=404)
    requests_mock.get(f"{BASE}/.well-known/agent.json", status_code=404)
    requests_mock.get(f"{BASE}/agent-card.json", json=AV_CARD)
    hook = hook_for(monkeypatch, f"{BASE}/", dialect="auto")
    assert hook.client.dialect == "agentvault" and hook.client.rpc_url == f"{BASE}/a2a/"
    (warning,) = logged(hook, "warning")
    assert "declares auth ['apiKey'] but the connection uses none" in warning


def test_a_fixed_a2a_dialect_with_a_card_url_takes_that_dialects_endpoint(monkeypatch, requests_mock):
    requests_mock.get(f"{BASE}/card.json", json=V10_CARD)
    hook = hook_for(monkeypatch, f"{BASE}/card.json", dialect="a2a-rest", **ELSEWHERE)
    assert hook.client.dialect == "a2a-rest" and hook.client.rpc_url == "http://127.0.0.1:56151/rest"


def test_test_connection_for_an_a2a_dialect(monkeypatch, requests_mock):
    requests_mock.get(f"{BASE}/agent-card.json", status_code=404)
    requests_mock.get(f"{BASE}/.well-known/agent-card.json", json=V10_CARD)
    ok, message = hook_for(monkeypatch, f"{BASE}/", password="k", dialect="auto", **ELSEWHERE).test_connection()
    assert ok and "slow-test-agent" in message and "using a2a-1.0 at http://127.0.0.1:56151/" in message
    assert "warning" not in message
    ok, message = hook_for(monkeypatch, f"{BASE}/", dialect="a2a-0.3").test_connection()
    assert not ok and "lists no a2a-0.3 endpoint" in message


async def test_aget_client_auto(monkeypatch, respx_mock):
    set_connection(monkeypatch, CONN, f"{BASE}/", dialect="auto", **ELSEWHERE)
    respx_mock.get(f"{BASE}/agent-card.json").mock(return_value=httpx.Response(404))
    respx_mock.get(f"{BASE}/.well-known/agent-card.json").mock(return_value=httpx.Response(200, json=V10_CARD))
    async with await AgentVaultHook(CONN, read_timeout=9).aget_client() as client:
        assert isinstance(client, AsyncAgentClient) and client.dialect == "a2a-1.0"
        assert client.rpc_url == "http://127.0.0.1:56151/" and client.agent.read_timeout == 9


async def test_aget_client_for_a_fixed_dialect_reads_nothing(monkeypatch, respx_mock):
    set_connection(monkeypatch, CONN, f"{BASE}/rest", dialect="a2a-rest")
    async with await AgentVaultHook(CONN).aget_client() as client:
        assert isinstance(client, AsyncAgentClient) and client.dialect == "a2a-rest"
        assert client.rpc_url == f"{BASE}/rest"
    assert respx_mock.calls.call_count == 0


def test_a_card_is_read_once_per_process_for_the_same_connection(monkeypatch, requests_mock):
    card = requests_mock.get(f"{BASE}/.well-known/agent-card.json", json=V10_CARD)
    for _ in range(3):
        assert hook_for(monkeypatch, f"{BASE}/", dialect="auto", **ELSEWHERE).client.dialect == "a2a-1.0"
    assert card.call_count == 1
