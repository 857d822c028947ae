"""The @a2a-js/sdk agent of the matrix is the case it is meant to be: a server with only A2A 1.0 interfaces.

Its card lists exactly two interfaces (JSON-RPC and HTTP+JSON, both protocolVersion 1.0), and the SDK
refuses a call that does not send ``A2A-Version: 1.0`` (it takes it for a 0.3 call). The matrix rows of
this server pass only because the provider sends the header; these checks keep that premise true.
"""

from __future__ import annotations

import json

import pytest
import requests

from interop import servers

pytestmark = pytest.mark.integration

JSONRPC_ROW = f"a2a-js-{servers.JS_SDK_VERSION}-jsonrpc-1.0"
SEND = {"message": {"messageId": "m-header-check", "role": "ROLE_USER", "parts": [{"text": "header check sleep=0.1"}]},
        "configuration": {"returnImmediately": True}}


def test_card_lists_only_a2a_1_0_interfaces(interop_server):
    server = interop_server(JSONRPC_ROW)
    card = requests.get(server.base_url + "/.well-known/agent-card.json", timeout=5).json()
    assert sorted((i["protocolBinding"], i["protocolVersion"], i["url"]) for i in card["supportedInterfaces"]) == [
        ("HTTP+JSON", "1.0", server.base_url + "/rest"), ("JSONRPC", "1.0", server.base_url + "/jsonrpc")]
    assert "protocolVersion" not in card and "url" not in card  # no 0.3 card fields


def test_calls_without_the_version_header_are_refused(interop_server):
    server = interop_server(JSONRPC_ROW)
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": SEND}
    refused = requests.post(server.base_url + "/jsonrpc", json=rpc, timeout=5).json()
    assert refused["error"]["code"] == -32009, refused  # VersionNotSupportedError: '0.3' is not supported
    rest = requests.post(server.base_url + "/rest/message:send", json=SEND, timeout=5)
    assert rest.status_code >= 400, rest.text
    accepted = requests.post(server.base_url + "/jsonrpc", json=rpc, headers={"A2A-Version": "1.0"}, timeout=5).json()
    assert accepted["result"]["task"]["id"], accepted
    rest_ok = requests.post(server.base_url + "/rest/message:send", json=SEND, headers={"A2A-Version": "1.0"},
                            timeout=5)
    assert rest_ok.status_code == 200 and rest_ok.json()["task"]["id"], rest_ok.text


@pytest.mark.parametrize("dialect, endpoint", [("a2a-1.0", "/jsonrpc"), ("a2a-rest", "/rest")])
def test_a_fixed_dialect_with_the_base_url_finds_its_endpoint_and_works(interop_server, monkeypatch, dialect,
                                                                         endpoint):
    from airflow_agentvault.hooks.agentvault import AgentVaultHook
    from airflow_agentvault.protocol.models import Message, TextPart

    server = interop_server(JSONRPC_ROW)
    monkeypatch.setenv("AIRFLOW_CONN_JS_AGENT", json.dumps(
        {"conn_type": "agentvault", "host": server.base_url + "/", "extra": {"dialect": dialect}}))
    hook = AgentVaultHook("js_agent")
    assert hook.client.rpc_url == server.base_url + endpoint and hook.client.dialect == dialect
    task_id = hook.client.send(Message(role="user", parts=[TextPart(content="hello sleep=0.1")]))
    assert hook.client.get(task_id).id == task_id
    ok, message = hook.test_connection()
    assert ok, message
    assert f"using {dialect} at {server.base_url}{endpoint}" in message
