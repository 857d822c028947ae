"""The ``agentvault`` connection and its hook: URL forms, auth, TLS, secrets, test_connection, provider info."""

from __future__ import annotations

import importlib
import importlib.resources
import json
from unittest import mock

import jsonschema
import pytest
import requests

import airflow_agentvault.hooks.agentvault as hook_module
from airflow_agentvault.compat import AIRFLOW_V_3_3_PLUS
from airflow_agentvault.connection_form import AUTH_TYPES, CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_agentvault.get_provider_info import get_provider_info
from airflow_agentvault.hooks.agentvault import (
    AgentVaultHook,
    ConnectionConfigError,
    settings_from_connection,
)
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.auth import NO_AUTH, ApiKeyAuth, BearerAuth, OAuth2ClientCredentials
from airflow_agentvault.protocol.client import DEFAULT_CONNECT_TIMEOUT
from airflow_agentvault.protocol.models import Message

BASE = "http://agent.test:8000"
RPC = f"{BASE}/a2a/"
CARD_URL = f"{BASE}/agent-card.json"
SECRET = "sk-hook-secret-5678"
CARD = {
    "schemaVersion": "1.0",
    "humanReadableId": "ref/agent",
    "agentVersion": "0.1.0",
    "name": "Reference Agent",
    "description": "A reference agent for tests",
    "url": "http://127.0.0.1:9/a2a/",
    "provider": {"name": "x"},
    "capabilities": {"a2aVersion": "1.0"},
    "authSchemes": [{"scheme": "none"}],
}


def settings(host, login=None, password=None, **extra):
    return settings_from_connection("av", host, login, password, extra)


def config_error(host="http://agent.test/a2a/", login=None, password=None, **extra) -> str:
    with pytest.raises(ConnectionConfigError) as info:
        settings(host, login, password, **extra)
    assert "connection 'av'" in str(info.value)
    return str(info.value)


@pytest.fixture
def connection(monkeypatch):
    """Define an ``agentvault`` connection through ``AIRFLOW_CONN_<ID>``; returns the conn id."""

    def define(conn_id="av_test", host=RPC, login=None, password=None, **extra):
        body = {"conn_type": "agentvault", "host": host, "login": login, "password": password, "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))
        return conn_id

    return define


# -- URL forms ---------------------------------------------------------------------------------


def test_jsonrpc_endpoint_url_is_used_as_is():
    s = settings(RPC)
    assert s.rpc_url == RPC
    assert s.card_url == CARD_URL


def test_non_default_endpoint_path_is_kept():
    s = settings(f"{BASE}/agents/research/rpc")
    assert s.rpc_url == f"{BASE}/agents/research/rpc"
    assert s.card_url == CARD_URL


@pytest.mark.parametrize("host", [BASE, f"{BASE}/"])
def test_base_url_gets_the_default_paths(host):
    s = settings(host)
    assert s.rpc_url == RPC
    assert s.card_url == CARD_URL


def test_base_url_with_custom_paths_from_extra():
    s = settings(BASE, rpc_path="/rpc", card_url="http://cards.test/agent.json")
    assert s.rpc_url == f"{BASE}/rpc"
    assert s.card_url == "http://cards.test/agent.json"


def test_card_url_defers_the_endpoint_to_the_card():
    s = settings(f"{BASE}/.well-known/agent.json")
    assert s.rpc_url is None
    assert s.card_url == f"{BASE}/.well-known/agent.json"


def test_card_url_with_explicit_rpc_url():
    s = settings(f"{BASE}/agent-card.json", rpc_url="http://other.test/a2a/")
    assert s.rpc_url == "http://other.test/a2a/"


def test_host_without_scheme_is_https():
    s = settings("agent.test/a2a/")
    assert s.rpc_url == "https://agent.test/a2a/"
    assert s.card_url == "https://agent.test/agent-card.json"


def test_user_info_is_not_part_of_the_card_origin():
    s = settings("http://user:pw@agent.test/")
    assert s.card_url == "http://agent.test/agent-card.json"
    assert s.rpc_url == "http://agent.test/a2a/"


@pytest.mark.parametrize("host", [None, ""])
def test_missing_host(host):
    assert "'host'" in config_error(host)


@pytest.mark.parametrize("host", ["ftp://agent.test/a2a/", "file:///etc/passwd", "http://", "ws://agent.test/"])
def test_non_http_url(host):
    message = config_error(host)
    assert "'host'" in message and "http(s)" in message


def test_non_http_url_error_does_not_quote_user_info():
    message = config_error(f"ftp://user:{SECRET}@agent.test/x?token={SECRET}")
    assert SECRET not in message
    assert "ftp://agent.test/x" in message


def test_defaults_for_timeout_and_dialect():
    s = settings(RPC)
    assert s.connect_timeout == DEFAULT_CONNECT_TIMEOUT
    assert s.dialect == "agentvault"
    assert settings(RPC, connect_timeout="2.5").connect_timeout == 2.5


# -- auth types --------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [{}, {"auth_type": "none"}, {"auth_type": None}, {"auth_type": ""}])
def test_auth_none(extra):
    s = settings(RPC, **extra)
    assert s.auth is NO_AUTH
    assert s.auth.headers() == {}


def test_auth_none_ignores_a_password_when_explicit():
    assert settings(RPC, password=SECRET, auth_type="none").auth is NO_AUTH


def test_only_a_password_defaults_to_api_key():
    s = settings(RPC, password=SECRET)
    assert isinstance(s.auth, ApiKeyAuth)
    assert s.auth.headers() == {"X-Api-Key": SECRET}


def test_api_key_default_header():
    s = settings(RPC, password=SECRET, auth_type="api_key")
    assert s.auth.headers() == {"X-Api-Key": SECRET}


def test_api_key_custom_header():
    s = settings(RPC, password=SECRET, auth_type="api_key", api_key_header="X-Agent-Key")
    assert s.auth.headers() == {"X-Agent-Key": SECRET}


def test_bearer():
    s = settings(RPC, password=SECRET, auth_type="bearer")
    assert isinstance(s.auth, BearerAuth)
    assert s.auth.headers() == {"Authorization": f"Bearer {SECRET}"}


def test_auth_type_is_case_and_space_insensitive():
    assert isinstance(settings(RPC, password=SECRET, auth_type=" Bearer ").auth, BearerAuth)


@pytest.mark.parametrize(
    "token_url, expected",
    [
        ("/oauth/token", f"{BASE}/oauth/token"),
        ("oauth/token", f"{BASE}/oauth/token"),
        ("https://idp.test/realms/x/token", "https://idp.test/realms/x/token"),
    ],
)
def test_oauth2_token_url_relative_and_absolute(token_url, expected):
    s = settings(RPC, login="cid", password=SECRET, auth_type="oauth2", token_url=token_url, scope="agents")
    assert isinstance(s.auth, OAuth2ClientCredentials)
    assert s.auth.token_url == expected
    assert s.auth.client_id == "cid"
    assert s.auth.client_secret == SECRET
    assert s.auth.scope == "agents"


def test_oauth2_gets_the_tls_settings():
    s = settings(RPC, login="cid", password=SECRET, auth_type="oauth2", token_url="/t", ca_bundle="/etc/ca.pem")
    assert s.auth.verify == "/etc/ca.pem"


@pytest.mark.parametrize("auth_type", ["api_key", "bearer"])
def test_secret_auth_without_password_names_the_field(auth_type):
    message = config_error(auth_type=auth_type)
    assert "'password'" in message and auth_type in message


@pytest.mark.parametrize(
    "login, password, extra, missing",
    [
        (None, SECRET, {"token_url": "/t"}, "login"),
        ("cid", None, {"token_url": "/t"}, "password"),
        ("cid", SECRET, {}, "oauth_endpoint"),
    ],
)
def test_oauth2_missing_pieces_name_the_field(login, password, extra, missing):
    message = config_error(login=login, password=password, auth_type="oauth2", **extra)
    assert missing in message and "oauth2" in message
    assert SECRET not in message
    others = {"login", "password", "oauth_endpoint"} - {missing}
    assert not any(other in message for other in others)


def test_oauth2_missing_everything_names_all_fields():
    message = config_error(auth_type="oauth2")
    assert "login" in message and "password" in message and "oauth_endpoint" in message


def test_bad_auth_type_names_the_field_and_the_choices():
    message = config_error(password=SECRET, auth_type="kerberos")
    assert "'auth_type'" in message and "'kerberos'" in message
    assert all(choice in message for choice in AUTH_TYPES)
    assert SECRET not in message


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_verified_by_default():
    assert settings(RPC).verify is True


@pytest.mark.parametrize("value", [False, "false", "False", "0", "no", "off"])
def test_verify_tls_false(value):
    assert settings(RPC, verify_tls=value).verify is False


@pytest.mark.parametrize("value", [True, "true", "1", None, ""])
def test_verify_tls_true(value):
    assert settings(RPC, verify_tls=value).verify is True


def test_ca_bundle():
    assert settings(RPC, ca_bundle="/etc/ssl/agent-ca.pem").verify == "/etc/ssl/agent-ca.pem"


def test_verify_tls_false_wins_over_ca_bundle():
    assert settings(RPC, ca_bundle="/etc/ssl/agent-ca.pem", verify_tls=False).verify is False


# -- the hook with Airflow connections ---------------------------------------------------------


def test_hook_reads_an_env_var_connection(connection):
    conn_id = connection(host=RPC, password=SECRET, auth_type="api_key", api_key_header="X-K", verify_tls=False)
    s = AgentVaultHook(conn_id).settings
    assert s.rpc_url == RPC
    assert s.card_url == CARD_URL
    assert s.auth.headers() == {"X-K": SECRET}
    assert s.verify is False


def test_hook_reads_an_oauth2_env_var_connection(connection):
    conn_id = connection(host=BASE, login="cid", password=SECRET, auth_type="oauth2", token_url="/oauth/token")
    s = AgentVaultHook(conn_id).settings
    assert s.rpc_url == RPC
    assert s.auth.token_url == f"{BASE}/oauth/token"
    assert s.auth.client_id == "cid"


def test_hook_defaults_and_metadata():
    assert AgentVaultHook.conn_type == "agentvault"
    assert AgentVaultHook.default_conn_name == "agentvault_default"
    assert AgentVaultHook().agentvault_conn_id == "agentvault_default"
    assert AgentVaultHook.conn_name_attr == "agentvault_conn_id"


def test_hook_builds_a_client_for_the_endpoint(connection):
    conn_id = connection(host=RPC, password=SECRET, auth_type="bearer")
    hook = AgentVaultHook(conn_id, read_timeout=7)
    assert hook.get_conn() is hook.client
    assert hook.client.rpc_url == RPC
    assert hook.client.agent.read_timeout == 7
    assert hook.agent_url == RPC


def test_hook_client_fetches_the_card_for_the_endpoint(connection, requests_mock):
    card_url = f"{BASE}/.well-known/agent.json"
    conn_id = connection(host=card_url, password=SECRET, auth_type="bearer")
    requests_mock.get(card_url, json={**CARD, "url": "http://agent.test:8000/rpc/"})
    hook = AgentVaultHook(conn_id)
    assert hook.client.rpc_url == "http://agent.test:8000/rpc/"
    assert hook.agent_url == "http://agent.test:8000/rpc/"
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {SECRET}"
    hook.client  # cached: no second fetch
    assert requests_mock.call_count == 1


def test_hook_client_with_an_unreachable_card_url_raises_agent_unreachable(connection, requests_mock):
    card_url = f"{BASE}/.well-known/agent.json"
    requests_mock.get(card_url, exc=requests.ConnectionError("Connection refused"))
    with pytest.raises(errors.AgentUnreachableError, match="GET agent card"):
        AgentVaultHook(connection(host=card_url)).client


def test_agent_url_is_redacted(connection):
    conn_id = connection(host="http://user:pw@agent.test/a2a/?key=abc")
    assert AgentVaultHook(conn_id).agent_url == "http://agent.test/a2a/"


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "login, extra",
    [(None, {"auth_type": "api_key"}), (None, {"auth_type": "bearer"}), (None, {}),
     ("cid", {"auth_type": "oauth2", "token_url": "/t"})],
)
def test_hook_registers_the_secret_with_the_masker(connection, login, extra):
    conn_id = connection(login=login, password=SECRET, **extra)
    with mock.patch.object(hook_module, "mask_secret") as mask_secret:
        AgentVaultHook(conn_id).settings
    mask_secret.assert_any_call(SECRET)
    assert all(call.args[0] for call in mask_secret.call_args_list)  # never masks an empty value


def test_hook_masks_before_it_can_fail_on_the_config(connection):
    conn_id = connection(password=SECRET, auth_type="kerberos")
    with mock.patch.object(hook_module, "mask_secret") as mask_secret:
        with pytest.raises(ConnectionConfigError):
            AgentVaultHook(conn_id).settings
    mask_secret.assert_any_call(SECRET)


def test_hook_without_secret_masks_nothing(connection):
    conn_id = connection()
    with mock.patch.object(hook_module, "mask_secret") as mask_secret:
        AgentVaultHook(conn_id).settings
    mask_secret.assert_not_called()


def test_airflow_masker_redacts_the_secret(connection):
    from airflow.sdk.log import redact

    secret = "sk-masker-check-2468"
    AgentVaultHook(connection(password=secret, auth_type="bearer")).settings
    assert secret not in redact(f"Authorization: Bearer {secret}")


def test_settings_repr_does_not_show_the_secret(connection):
    conn_id = connection(login="cid", password=SECRET, auth_type="oauth2", token_url="/t")
    s = AgentVaultHook(conn_id).settings
    assert SECRET not in repr(s) and SECRET not in str(s)
    for auth_type in ("api_key", "bearer"):
        assert SECRET not in repr(settings(RPC, password=SECRET, auth_type=auth_type))


def test_agent_401_error_does_not_show_the_secret(connection, requests_mock):
    requests_mock.post(RPC, status_code=401, json={"detail": f"invalid key {SECRET}"})
    hook = AgentVaultHook(connection(password=SECRET, auth_type="api_key"))
    with pytest.raises(errors.NotAuthorizedError) as info:
        hook.client.get("t1")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert requests_mock.last_request.headers["X-Api-Key"] == SECRET


def test_token_endpoint_401_through_the_hook_does_not_show_the_secret(connection, requests_mock):
    requests_mock.post(f"{BASE}/oauth/token", status_code=401, json={"error": f"bad secret {SECRET}"})
    hook = AgentVaultHook(connection(login="cid", password=SECRET, auth_type="oauth2", token_url="/oauth/token"))
    with pytest.raises(errors.NotAuthorizedError) as info:
        hook.client.get("t1")
    assert SECRET not in str(info.value)
    assert "oauth2 token" in str(info.value)


def test_oauth2_hook_client_sends_the_fetched_token(connection, requests_mock):
    requests_mock.post(f"{BASE}/oauth/token", json={"access_token": "at-123", "expires_in": 600})
    requests_mock.post(RPC, json={"jsonrpc": "2.0", "id": 1, "result": {"id": "t1"}},
                       headers={"Content-Type": "application/json"})
    hook = AgentVaultHook(connection(login="cid", password=SECRET, auth_type="oauth2", token_url="/oauth/token"))
    assert hook.client.send(Message(role="user", parts=[{"type": "text", "content": "hi"}])) == "t1"
    assert requests_mock.last_request.headers["Authorization"] == "Bearer at-123"


# -- test_connection ---------------------------------------------------------------------------


def test_test_connection_success_names_the_agent(connection, requests_mock):
    requests_mock.get(CARD_URL, json=CARD)
    ok, message = AgentVaultHook(connection(host=RPC)).test_connection()
    assert ok is True
    assert "Reference Agent" in message and "0.1.0" in message
    assert "warning" not in message
    assert requests_mock.last_request.url == CARD_URL


def test_test_connection_warns_on_auth_mismatch(connection, requests_mock):
    requests_mock.get(CARD_URL, json=CARD)
    ok, message = AgentVaultHook(connection(password=SECRET, auth_type="api_key")).test_connection()
    assert ok is True
    assert "Reference Agent" in message
    assert "warning" in message and "none" in message and "apikey" in message.lower()
    assert SECRET not in message


def test_test_connection_matching_auth_has_no_warning(connection, requests_mock):
    requests_mock.get(CARD_URL, json={**CARD, "authSchemes": [{"scheme": "apiKey"}]})
    ok, message = AgentVaultHook(connection(password=SECRET, auth_type="api_key")).test_connection()
    assert ok and "warning" not in message


def test_test_connection_bearer_is_accepted_for_an_oauth2_card(connection, requests_mock):
    requests_mock.get(CARD_URL, json={**CARD, "authSchemes": [{"scheme": "oauth2", "tokenUrl": "/t"}]})
    ok, message = AgentVaultHook(connection(password=SECRET, auth_type="bearer")).test_connection()
    assert ok and "warning" not in message


@pytest.mark.parametrize(("auth", "declared"), [("bearer", "openIdConnect"), ("oauth2", "bearer")])
def test_test_connection_takes_discoverys_auth_rule(connection, requests_mock, auth, declared):
    """The hook once had its own rule and warned on these two, where discovery did not."""
    requests_mock.post(f"{BASE}/t", json={"access_token": "at-1", "expires_in": 60})
    conn_id = connection(login="cid", password=SECRET, auth_type=auth, token_url="/t")
    requests_mock.get(CARD_URL, json={**CARD, "authSchemes": [{"scheme": declared}]})
    ok, message = AgentVaultHook(conn_id).test_connection()
    assert ok and "warning" not in message
    requests_mock.get(CARD_URL, json={**CARD, "authSchemes": [{"scheme": "apiKey"}]})
    ok, message = AgentVaultHook(conn_id).test_connection()
    assert ok and message.endswith(
        f"; warning: the agent card declares auth ['apiKey'] but the connection uses {auth}: expect HTTP 401 "
        "unless the agent accepts it anyway") and SECRET not in message


def test_test_connection_unreachable(connection, requests_mock):
    requests_mock.get(CARD_URL, exc=requests.ConnectionError("Connection refused"))
    ok, message = AgentVaultHook(connection()).test_connection()
    assert ok is False
    assert "Connection refused" in message and CARD_URL in message


def test_test_connection_401(connection, requests_mock):
    requests_mock.get(CARD_URL, status_code=401, json={"detail": f"bad key {SECRET}"})
    ok, message = AgentVaultHook(connection(password=SECRET)).test_connection()
    assert ok is False
    assert "401" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"json": {"url": "http://x/a2a/"}}, "invalid AgentCard"),
        ({"json": [1, 2]}, "agent card is not a JSON object"),
        ({"text": "<html>hello</html>"}, "not valid JSON"),
        ({"status_code": 404, "text": "nf"}, "404"),
    ],
)
def test_test_connection_invalid_card(connection, requests_mock, kwargs, expected):
    requests_mock.get(CARD_URL, **kwargs)
    ok, message = AgentVaultHook(connection()).test_connection()
    assert ok is False
    assert expected in message


def test_test_connection_bad_config(connection):
    ok, message = AgentVaultHook(connection(auth_type="bearer")).test_connection()
    assert ok is False
    assert "'password'" in message


def test_test_connection_token_endpoint_failure(connection, requests_mock):
    requests_mock.post(f"{BASE}/oauth/token", status_code=401)
    conn_id = connection(login="cid", password=SECRET, auth_type="oauth2", token_url="/oauth/token")
    ok, message = AgentVaultHook(conn_id).test_connection()
    assert ok is False
    assert "token endpoint" in message and SECRET not in message


# -- provider info -----------------------------------------------------------------------------


def _airflow_schema(name: str) -> dict:
    return json.loads(importlib.resources.files("airflow").joinpath(name).read_text())


def test_provider_info_validates_against_airflows_schema():
    schema = _airflow_schema("provider_info.schema.json")
    jsonschema.validators.validator_for(schema)(schema).validate(get_provider_info())


def test_provider_info_connection_type():
    info = get_provider_info()
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "agentvault"
    assert conn_type["hook-name"] == AgentVaultHook.hook_name
    module_name, _, class_name = conn_type["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module_name), class_name) is AgentVaultHook
    assert AgentVaultHook.conn_type == conn_type["connection-type"]
    assert info["package-name"] == "airflow-agentvault"


def test_provider_info_hook_module_is_listed():
    info = get_provider_info()
    assert [h["python-modules"] for h in info["hooks"]] == [["airflow_agentvault.hooks.agentvault"]]


def test_conn_fields_have_label_and_schema():
    (conn_type,) = get_provider_info()["connection-types"]
    fields = conn_type["conn-fields"]
    assert {"auth_type", "key_header", "oauth_endpoint", "scope", "verify_tls", "ca_bundle"} <= set(fields)
    for name, field in fields.items():
        assert isinstance(field["label"], str) and field["label"], name
        assert isinstance(field["schema"], dict) and "type" in field["schema"], name
        jsonschema.validators.validator_for({}).check_schema(field["schema"])
    assert fields["auth_type"]["schema"]["enum"] == list(AUTH_TYPES)


def test_conn_field_defaults_produce_the_documented_settings():
    extra = {name: field["schema"].get("default") for name, field in CONN_FIELDS.items()}
    s = settings(RPC, **extra)
    assert s.auth is NO_AUTH and s.verify is True and s.dialect == "agentvault"


def test_ui_field_behaviour_validates_as_airflow_converts_it():
    (conn_type,) = get_provider_info()["connection-types"]
    behaviour = conn_type["ui-field-behaviour"]
    assert behaviour["hidden-fields"] == ["schema", "port"]
    converted = {  # what ProvidersManager does with the provider-info form
        "hidden_fields": behaviour.get("hidden-fields", []),
        "relabeling": behaviour.get("relabeling", {}),
        "placeholders": behaviour.get("placeholders", {}),
    }
    schema = _airflow_schema("customized_form_field_behaviours.schema.json")
    jsonschema.validators.validator_for(schema)(schema).validate(converted)


def test_hook_ui_field_behaviour_matches_the_provider_info():
    schema = _airflow_schema("customized_form_field_behaviours.schema.json")
    from_hook = AgentVaultHook.get_ui_field_behaviour()
    jsonschema.validators.validator_for(schema)(schema).validate(from_hook)
    assert from_hook == {
        "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
        "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
        "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
    }


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="forms from provider info came with Airflow 3.3 (compat.py)")
def test_providers_manager_loads_the_connection_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["agentvault"]
    assert behaviour["hidden_fields"] == ["schema", "port"]
    assert behaviour["relabeling"]["host"].startswith("Agent URL")
    assert "extra__agentvault__auth_type" in manager.connection_form_widgets


def test_uri_form_connection_keeps_port_and_path(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_URI_AGENT", "agentvault://127.0.0.1:8765/a2a%2F?scheme=http")
    settings = AgentVaultHook("uri_agent").settings
    assert settings.rpc_url == "http://127.0.0.1:8765/a2a/"


def test_credentials_stay_with_the_connections_origin():
    from airflow_agentvault.hooks.agentvault import credential_safe_endpoint

    keyed = settings("http://agent.test:8000/agent-card.json", password="k")
    url, warning = credential_safe_endpoint(keyed, "https://elsewhere.example/a2a/?x=1")
    assert url == "http://agent.test:8000/a2a/?x=1" and "credentials stay with http://agent.test:8000" in warning
    assert credential_safe_endpoint(keyed, "http://agent.test:8000/rpc") == ("http://agent.test:8000/rpc", None)
    open_agent = settings("http://agent.test:8000/agent-card.json")
    assert credential_safe_endpoint(open_agent, "https://elsewhere.example/a2a/")[1] is None
    # One origin function: another spelling of the connection's origin is the same origin.
    secure = settings("https://agent.test/agent-card.json", password="k")
    assert secure.rpc_url is None and credential_safe_endpoint(secure, "https://AGENT.test:443/a2a/")[1] is None
    assert settings("https://Agent.test:443/", password="k").rpc_url == "https://agent.test/a2a/"
    trusted = settings("http://agent.test:8000/agent-card.json", password="k", trust_card_endpoint="true")
    assert credential_safe_endpoint(trusted, "https://elsewhere.example/a2a/")[0] == "https://elsewhere.example/a2a/"


def test_bad_extras_are_connection_errors_not_crashes():
    assert "extra 'connect_timeout' must be a positive number" in config_error(connect_timeout="soon")
    assert "extra 'auth_type' must be one of" in config_error(auth_type=7)


def test_no_connection_extra_but_secrets_is_masked_by_name():
    """Airflow hides extras whose names look sensitive; ours name no secret, so the form shows them."""
    # The function Airflow itself asks (it has no public alias); the test fails if its list changes under us.
    from airflow.sdk._shared.secrets_masker.secrets_masker import should_hide_value_for_key

    from airflow_agentvault.connection_form import CONN_FIELDS

    assert [name for name in CONN_FIELDS if should_hide_value_for_key(name)] == []


def test_renamed_extras_are_still_read():
    old = settings_from_connection("c", "http://a/a2a/", None, "k", {"api_key_header": "X-Old"})
    new = settings_from_connection("c", "http://a/a2a/", None, "k", {"key_header": "X-New"})
    assert old.auth.header == "X-Old" and new.auth.header == "X-New"


def test_every_config_option_the_code_reads_is_declared():
    """``conf.get("agentvault", name)`` anywhere in the package has its option in the provider info."""
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "airflow_agentvault"
    read = {match for path in package.rglob("*.py")
            for match in re.findall(r'conf\.get\w*\(\s*"agentvault",\s*"(\w+)"', path.read_text())}
    declared = set(get_provider_info()["config"]["agentvault"]["options"])
    assert read and read == declared
