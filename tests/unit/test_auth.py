"""Credentials as headers: API key, bearer, OAuth2 client credentials (token endpoint mocked)."""

from __future__ import annotations

import types
from urllib.parse import parse_qs

import httpx
import pytest
import requests
import respx

from airflow_agentvault.protocol import auth as auth_module
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncRunner, ssl_context
from airflow_agentvault.protocol.auth import (
    NO_AUTH,
    TOKEN_EXPIRY_MARGIN,
    ApiKeyAuth,
    BearerAuth,
    OAuth2ClientCredentials,
)
from airflow_agentvault.protocol.client import BlockingRunner
from airflow_agentvault.protocol.exchange import AuthHeaders

TOKEN_URL = "https://idp.test/oauth/token"
CLIENT_SECRET = "cs-very-secret-9876"

def _headers_program(auth):
    return (yield AuthHeaders(auth))


def headers(auth):
    """The auth's headers as the blocking runner computes them (under the auth's lock)."""
    return BlockingRunner(verify=getattr(auth, "verify", True)).run(_headers_program(auth))


async def aheaders(auth):
    """The auth's headers as the triggerer's runner computes them (under the auth's asyncio lock)."""
    async with httpx.AsyncClient(verify=ssl_context(getattr(auth, "verify", True))) as http:
        return await AsyncRunner(http).run(_headers_program(auth))



class Clock:
    """A controllable ``time.monotonic`` for the auth module only (the event loop keeps the real one)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(auth_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


@pytest.fixture
def oauth():
    return OAuth2ClientCredentials(
        token_url=TOKEN_URL, client_id="my-client", client_secret=CLIENT_SECRET, scope="agents:run"
    )


def _form(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.text).items()}


# -- simple schemes ----------------------------------------------------------------------------


def test_no_auth_sends_nothing_and_has_no_secrets():
    assert NO_AUTH.headers() == {}
    assert NO_AUTH.secrets() == []
    assert NO_AUTH.scheme == "none"


def test_api_key_default_and_custom_header():
    assert ApiKeyAuth("k1").headers() == {"X-Api-Key": "k1"}
    assert ApiKeyAuth("k2", header="X-Agent-Key").headers() == {"X-Agent-Key": "k2"}
    assert ApiKeyAuth("k1").secrets() == ["k1"]


def test_bearer_header():
    assert BearerAuth("tok").headers() == {"Authorization": "Bearer tok"}
    assert BearerAuth("tok").secrets() == ["tok"]


async def test_simple_schemes_async_headers_match_sync():
    assert await aheaders(ApiKeyAuth("k", header="X-K")) == {"X-K": "k"}
    assert await aheaders(BearerAuth("t")) == {"Authorization": "Bearer t"}
    assert await aheaders(NO_AUTH) == {}


@pytest.mark.parametrize(
    "auth, secret",
    [
        (ApiKeyAuth("sk-api-key-secret"), "sk-api-key-secret"),
        (ApiKeyAuth("sk-api-key-secret", header="X-Other"), "sk-api-key-secret"),
        (BearerAuth("bearer-token-secret"), "bearer-token-secret"),
        (OAuth2ClientCredentials(token_url=TOKEN_URL, client_id="cid", client_secret=CLIENT_SECRET), CLIENT_SECRET),
    ],
)
def test_repr_and_str_never_show_the_secret(auth, secret):
    assert secret not in repr(auth)
    assert secret not in str(auth)
    assert type(auth).__name__ in repr(auth)


def test_repr_hides_a_fetched_oauth_token(requests_mock, oauth):
    requests_mock.post(TOKEN_URL, json={"access_token": "at-secret-access-token", "expires_in": 600})
    headers(oauth)
    assert "at-secret-access-token" not in repr(oauth)
    assert CLIENT_SECRET not in repr(oauth)


# -- OAuth2, sync ------------------------------------------------------------------------------


def test_oauth2_posts_the_client_credentials_form(requests_mock, oauth, clock):
    requests_mock.post(TOKEN_URL, json={"access_token": "at-1", "token_type": "Bearer", "expires_in": 600})
    assert headers(oauth) == {"Authorization": "Bearer at-1"}
    request = requests_mock.last_request
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert _form(request) == {
        "grant_type": "client_credentials",
        "client_id": "my-client",
        "client_secret": CLIENT_SECRET,
        "scope": "agents:run",
    }


def test_oauth2_without_scope_omits_it(requests_mock, clock):
    requests_mock.post(TOKEN_URL, json={"access_token": "at-1"})
    headers(OAuth2ClientCredentials(token_url=TOKEN_URL, client_id="c", client_secret="s"))
    assert "scope" not in _form(requests_mock.last_request)


def test_oauth2_token_is_cached_until_shortly_before_expiry_then_refreshed(requests_mock, oauth, clock):
    requests_mock.post(
        TOKEN_URL,
        [{"json": {"access_token": "at-1", "expires_in": 600}}, {"json": {"access_token": "at-2", "expires_in": 600}}],
    )
    assert headers(oauth)["Authorization"] == "Bearer at-1"
    clock.now += 600 - TOKEN_EXPIRY_MARGIN - 1
    assert headers(oauth)["Authorization"] == "Bearer at-1"
    assert requests_mock.call_count == 1
    clock.now += 2  # now inside the expiry margin
    assert headers(oauth)["Authorization"] == "Bearer at-2"
    assert requests_mock.call_count == 2
    assert headers(oauth)["Authorization"] == "Bearer at-2"
    assert requests_mock.call_count == 2


def test_oauth2_short_lived_token_is_kept_for_half_its_life(requests_mock, oauth, clock):
    requests_mock.post(
        TOKEN_URL,
        [{"json": {"access_token": "at-1", "expires_in": 40}}, {"json": {"access_token": "at-2", "expires_in": 40}}],
    )
    headers(oauth)
    clock.now += 19
    assert headers(oauth)["Authorization"] == "Bearer at-1"
    clock.now += 2
    assert headers(oauth)["Authorization"] == "Bearer at-2"


def test_oauth2_missing_expires_in_defaults_to_an_hour(requests_mock, oauth, clock):
    requests_mock.post(TOKEN_URL, json={"access_token": "at-1"})
    headers(oauth)
    clock.now += 3000
    headers(oauth)
    assert requests_mock.call_count == 1


def test_oauth2_fetched_token_joins_the_secrets(requests_mock, oauth, clock):
    assert oauth.secrets() == [CLIENT_SECRET]
    requests_mock.post(TOKEN_URL, json={"access_token": "at-1"})
    headers(oauth)
    assert oauth.secrets() == [CLIENT_SECRET, "at-1"]


def test_oauth2_passes_tls_settings_to_the_token_endpoint(requests_mock, clock):
    requests_mock.post(TOKEN_URL, json={"access_token": "at-1"})
    headers(OAuth2ClientCredentials(token_url=TOKEN_URL, client_id="c", client_secret="s", verify="/etc/ca.pem"))
    assert requests_mock.last_request.verify == "/etc/ca.pem"


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"status_code": 401, "json": {"error": "invalid_client", "error_description": f"bad {CLIENT_SECRET}"}},
         errors.NotAuthorizedError),
        ({"status_code": 400, "json": {"error": "invalid_client"}}, errors.NotAuthorizedError),
        ({"status_code": 403, "text": "forbidden"}, errors.NotAuthorizedError),
        ({"status_code": 500, "text": "boom"}, errors.AgentUnreachableError),
        ({"status_code": 503, "text": "busy"}, errors.AgentUnreachableError),
        ({"json": {"token_type": "Bearer"}}, errors.ProtocolViolationError),
        ({"json": {"access_token": 42}}, errors.ProtocolViolationError),
        ({"json": ["not", "an", "object"]}, errors.ProtocolViolationError),
        ({"text": "<html>not json</html>"}, errors.ProtocolViolationError),
        ({"json": {"access_token": "at", "expires_in": "soon"}}, errors.ProtocolViolationError),
    ],
)
def test_oauth2_token_endpoint_errors_are_typed_and_never_quote_the_secret(requests_mock, oauth, clock, kwargs,
                                                                            error):
    requests_mock.post(TOKEN_URL, **kwargs)
    with pytest.raises(error) as info:
        headers(oauth)
    assert type(info.value) is error
    message = str(info.value)
    assert CLIENT_SECRET not in message
    assert "idp.test/oauth/token" in message and "oauth2 token" in message
    assert oauth._token is None  # nothing cached after a failure


def test_oauth2_token_endpoint_401_is_not_retryable_and_500_is(requests_mock, oauth, clock):
    requests_mock.post(TOKEN_URL, [{"status_code": 401}, {"status_code": 500}])
    with pytest.raises(errors.NotAuthorizedError) as refused:
        headers(oauth)
    with pytest.raises(errors.AgentUnreachableError) as down:
        headers(oauth)
    assert not refused.value.retryable
    assert down.value.retryable


@pytest.mark.parametrize("exc", [requests.ConnectionError("Connection refused"), requests.ConnectTimeout()])
def test_oauth2_unreachable_token_endpoint(requests_mock, oauth, clock, exc):
    requests_mock.post(TOKEN_URL, exc=exc)
    with pytest.raises(errors.AgentUnreachableError, match="token endpoint unreachable"):
        headers(oauth)


def test_oauth2_error_url_is_redacted(requests_mock, clock):
    url = "https://idp.test/token?client_secret=in-the-query"
    requests_mock.post(url, status_code=401)
    auth = OAuth2ClientCredentials(token_url=url, client_id="c", client_secret="s")
    with pytest.raises(errors.NotAuthorizedError) as info:
        headers(auth)
    assert "in-the-query" not in str(info.value)


# -- OAuth2, async -----------------------------------------------------------------------------


@respx.mock
async def test_oauth2_async_posts_the_form_and_caches(oauth, clock):
    route = respx.post(TOKEN_URL).mock(
        side_effect=[
            httpx.Response(200, json={"access_token": "at-1", "expires_in": 600}),
            httpx.Response(200, json={"access_token": "at-2", "expires_in": 600}),
        ]
    )
    assert await aheaders(oauth) == {"Authorization": "Bearer at-1"}
    request = route.calls.last.request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert {k: v[0] for k, v in parse_qs(request.content.decode()).items()} == {
        "grant_type": "client_credentials",
        "client_id": "my-client",
        "client_secret": CLIENT_SECRET,
        "scope": "agents:run",
    }
    assert await aheaders(oauth) == {"Authorization": "Bearer at-1"}
    assert route.call_count == 1
    clock.now += 600
    assert await aheaders(oauth) == {"Authorization": "Bearer at-2"}
    assert route.call_count == 2


@respx.mock
async def test_oauth2_sync_and_async_share_the_cached_token(requests_mock, oauth, clock):
    requests_mock.post(TOKEN_URL, json={"access_token": "at-sync", "expires_in": 600})
    route = respx.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "at-async"}))
    assert headers(oauth)["Authorization"] == "Bearer at-sync"
    assert (await aheaders(oauth))["Authorization"] == "Bearer at-sync"
    assert route.call_count == 0


@pytest.mark.parametrize(
    "response, error",
    [
        (httpx.Response(401, json={"error": "invalid_client"}), errors.NotAuthorizedError),
        (httpx.Response(500, text="boom"), errors.AgentUnreachableError),
        (httpx.Response(200, json={"token_type": "Bearer"}), errors.ProtocolViolationError),
        (httpx.Response(200, text="not json"), errors.ProtocolViolationError),
    ],
)
@respx.mock
async def test_oauth2_async_token_endpoint_errors(oauth, clock, response, error):
    respx.post(TOKEN_URL).mock(return_value=response)
    with pytest.raises(error) as info:
        await aheaders(oauth)
    assert type(info.value) is error
    assert CLIENT_SECRET not in str(info.value)


@respx.mock
async def test_oauth2_async_unreachable_token_endpoint(oauth, clock):
    respx.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("Connection refused"))
    with pytest.raises(errors.AgentUnreachableError, match="token endpoint unreachable"):
        await aheaders(oauth)


def test_oauth2_new_token_is_reported_for_masking(requests_mock):
    seen = []
    requests_mock.post("https://auth.test/token", json={"access_token": "tok-abc", "expires_in": 600})
    auth = OAuth2ClientCredentials(token_url="https://auth.test/token", client_id="c", client_secret="s",
                                   on_token=seen.append)
    headers(auth)
    headers(auth)
    assert seen == ["tok-abc"]


@respx.mock
async def test_oauth2_async_path_awaits_an_async_token_callback():
    seen = []

    async def remember(token: str) -> None:
        seen.append(token)

    respx.post("https://auth.test/token").mock(
        return_value=httpx.Response(200, json={"access_token": "tok-async", "expires_in": 600}))
    auth = OAuth2ClientCredentials(token_url="https://auth.test/token", client_id="c", client_secret="s",
                                   on_token=remember)
    await aheaders(auth)
    await aheaders(auth)
    assert seen == ["tok-async"]


# -- which auth a card allows (one rule: discovery's warnings and the hook's test_connection) ---------------

OAUTH2 = OAuth2ClientCredentials(token_url=TOKEN_URL, client_id="c", client_secret=CLIENT_SECRET)


@pytest.mark.parametrize(("declared", "auth", "allowed"), [
    ([], NO_AUTH, True),  # nothing declared: the agent's 401 decides
    ([], ApiKeyAuth(key="k"), True),
    (["none"], NO_AUTH, True),
    (["apiKey"], NO_AUTH, False),
    (["APIKEY"], ApiKeyAuth(key="k"), True),  # names compare without case
    (["bearer"], ApiKeyAuth(key="k"), False),
    (["apiKey"], BearerAuth(token="t"), False),
    (["oauth2"], BearerAuth(token="t"), True),
    (["oauth2"], OAUTH2, True),
    # The copies differed here: the hook's test_connection warned, discovery did not. A bearer token
    # or an OAuth2 token is the same Authorization: Bearer header to the agent, so no warning.
    (["openIdConnect"], BearerAuth(token="t"), True),
    (["bearer"], OAUTH2, True),
    (["openIdConnect"], OAUTH2, True),
    (["basic"], BearerAuth(token="t"), False),
    (["mutualTLS"], OAUTH2, False),
    (["oauth2"], NO_AUTH, False),
    (["none", "apiKey"], NO_AUTH, True),
])
def test_card_allows(declared, auth, allowed):
    assert auth_module.card_allows(declared, auth) is allowed
