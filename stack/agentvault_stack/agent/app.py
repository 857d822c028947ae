"""HTTP surface of the reference agent: AgentVault's card, JSON-RPC endpoint and SSE, byte for byte.

Why it exists: tests of the operators need a real server that answers exactly as
``agentvault-server-sdk`` does in the raw captures (``wire/agentvault/``), which cannot be installed
beside Airflow. It is an independent implementation of the wire format, in plain dicts, so it never
shares a bug with the client models.

Routes:

* ``GET /agent-card.json``: the card; its ``url`` follows the request's Host header, so fetch it
  via ``http://localhost:<port>`` to get a URL the SDK's card validator accepts;
* ``POST /a2a/``: JSON-RPC (``tasks/send``, ``tasks/get``, ``tasks/cancel``, ``tasks/sendSubscribe``);
  ``POST /a2a`` answers 307 to it. ``tasks/sendSubscribe`` streams only events emitted
  after the call; on a task already finished (or waiting for a person) it sends that last
  ``task_status`` once and closes, where the real SDK would send nothing (see ``tasks.py``);
* ``POST /oauth/token``: OAuth2 client credentials, when the behaviour configures a client;
* ``GET /_control/stats``, ``GET``/``POST /_control/behaviour``: for tests; never authenticated.

Authentication (when configured) guards only the JSON-RPC endpoint and answers a plain 401
``{"detail": ...}`` as a FastAPI dependency would, not a JSON-RPC error.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from agentvault_stack.agent import telemetry
from agentvault_stack.agent.behaviour import OVERRIDE_KEY, AgentBehaviour
from agentvault_stack.agent.contract import Skill
from agentvault_stack.agent.journal import TaskJournal
from agentvault_stack.agent.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    TASK_NOT_FOUND,
    RpcError,
    TaskCancelParams,
    TaskGetParams,
    TaskSendParams,
    TaskSubscribeParams,
    json_response,
    overrides_of,
    params_of,
    rpc_error,
    rpc_result,
    sse_event,
)
from agentvault_stack.agent.tasks import TaskNotFound, TaskStore

DEFAULT_NAME = "AgentVault Reference Agent"
DEFAULT_AGENT_ID = "airflow-agentvault/reference-agent"
AGENT_VERSION = "0.1.0"


# -- the agent ------------------------------------------------------------------------------


class ReferenceAgent:
    """State behind the routes: behaviour, tasks, issued tokens and counters."""

    def __init__(
        self, behaviour: AgentBehaviour, *, name: str, agent_id: str, skill: Skill | None = None,
        task_store: str | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.name = name
        self.agent_id = agent_id
        self.store = TaskStore(skill, TaskJournal(task_store) if task_store else None)
        self.skill = self.store.skill
        self.requests: collections.Counter[str] = collections.Counter()
        self.token_requests = 0
        self.tokens_issued = 0
        self.unauthorized = 0
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry

    # -- authentication --

    def _unauthorized(self, request: Request) -> Response | None:
        """``None`` when the request may pass, else the 401 a FastAPI dependency would send."""
        behaviour = self.behaviour
        if not behaviour.auth_required:
            return None
        key = request.headers.get("x-api-key")
        if behaviour.api_key and key is not None and hmac.compare_digest(key, behaviour.api_key):
            return None
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential:
            if behaviour.bearer_token and hmac.compare_digest(credential, behaviour.bearer_token):
                return None
            if behaviour.oauth_enabled and self._tokens.get(credential, 0.0) > time.monotonic():
                return None
        self.unauthorized += 1
        bearer_accepted = bool(behaviour.bearer_token or behaviour.oauth_enabled)
        if behaviour.api_key and (key is not None or not bearer_accepted):
            return json_response({"detail": "bad api key"}, 401)
        return json_response({"detail": "bad bearer token"}, 401, {"www-authenticate": "Bearer"})

    # -- routes --

    async def card(self, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return json_response(
            {
                "schemaVersion": "1.0",
                "humanReadableId": self.agent_id,
                "agentVersion": AGENT_VERSION,
                "name": self.name,
                "description": self.skill.card_description,
                "url": f"{base}/a2a/",
                "provider": {"name": "airflow-agentvault"},
                "capabilities": {
                    "a2aVersion": "1.0",
                    "supportedMessageParts": ["text", "data", "file"],
                    "supportsPushNotifications": False,
                },
                "authSchemes": self._auth_schemes(base),
                "skills": [self.skill.card_entry()],
                "tags": ["reference", "research", "testing"],
            }
        )

    def _auth_schemes(self, base: str) -> list[dict[str, Any]]:
        behaviour = self.behaviour
        schemes: list[dict[str, Any]] = []
        if behaviour.api_key:
            schemes.append({"scheme": "apiKey", "description": "Send the key in the X-Api-Key header."})
        if behaviour.oauth_enabled:
            schemes.append(
                {
                    "scheme": "oauth2",
                    "description": "Client credentials grant; send the token as Authorization: Bearer.",
                    "tokenUrl": f"{base}/oauth/token",
                }
            )
        if behaviour.bearer_token:
            schemes.append({"scheme": "bearer", "description": "Send Authorization: Bearer <token>."})
        return schemes or [{"scheme": "none"}]

    async def redirect_rpc(self, request: Request) -> Response:
        return RedirectResponse(str(request.url.replace(path="/a2a/")), status_code=307)

    async def rpc(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return rpc_error(None, PARSE_ERROR, "Parse error")
        if not isinstance(payload, dict):
            return rpc_error(None, INVALID_REQUEST, "Invalid Request: payload must be a JSON object")
        request_id = payload.get("id")
        method = payload.get("method")
        if payload.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return rpc_error(
                request_id, INVALID_REQUEST, "Invalid Request: jsonrpc must be '2.0' and method a string"
            )
        self.requests[method] += 1
        handler = self._methods().get(method)
        if handler is None:
            return rpc_error(request_id, METHOD_NOT_FOUND, "Method not found")
        params = payload.get("params", {})
        if not isinstance(params, dict):
            return rpc_error(request_id, INVALID_PARAMS, "Invalid parameters: params must be an object")
        try:
            with telemetry.server_span(request, method, self.name):
                outcome = await handler(params)
        except RpcError as exc:
            return rpc_error(request_id, exc.code, exc.message)
        except TaskNotFound as exc:
            return rpc_error(request_id, TASK_NOT_FOUND, str(exc))
        except Exception as exc:  # noqa: BLE001 - a JSON-RPC endpoint answers, it does not 500
            return rpc_error(request_id, INTERNAL_ERROR, f"Internal error: {exc}")
        if isinstance(outcome, Response):
            return outcome
        return rpc_result(request_id, outcome)

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        return {
            "tasks/send": self._send,
            "tasks/get": self._get,
            "tasks/cancel": self._cancel,
            "tasks/sendSubscribe": self._subscribe,
        }

    async def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        parsed: TaskSendParams = params_of(TaskSendParams, params)
        message = parsed.message.model_dump(mode="json")
        overrides = overrides_of(parsed.message)
        try:
            if parsed.id is not None:
                return {"id": self.store.follow_up(parsed.id, message, overrides).id}
            behaviour = self.behaviour.with_overrides(overrides)
        except ValidationError as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid parameters: metadata.{OVERRIDE_KEY}: {exc}") from exc
        return {"id": self.store.create(message, behaviour).id}

    async def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get(params_of(TaskGetParams, params).id).to_wire()

    async def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"success": self.store.cancel(params_of(TaskCancelParams, params).id), "message": None}

    async def _subscribe(self, params: dict[str, Any]) -> Response:
        task = self.store.get(params_of(TaskSubscribeParams, params).id)
        if task.behaviour.subscribe_not_found:
            raise TaskNotFound(task.id)  # a misrouted agent: a JSON error body instead of a stream
        events = self.store.subscribe(task)

        async def body() -> AsyncIterator[bytes]:
            async for event, data in events:
                yield sse_event(event, data)

        return StreamingResponse(body(), media_type="text/event-stream")

    async def oauth_token(self, request: Request) -> Response:
        self.token_requests += 1
        behaviour = self.behaviour
        if not behaviour.oauth_enabled:
            return json_response({"detail": "Not Found"}, 404)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":  # client_secret_basic, which many OAuth clients prefer
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                client_id, _, client_secret = base64.b64decode(encoded.strip()).decode().partition(":")
        no_store = {"cache-control": "no-store"}
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400, no_store)
        if not (
            client_id
            and client_secret
            and hmac.compare_digest(client_id, behaviour.oauth_client_id or "")
            and hmac.compare_digest(client_secret, behaviour.oauth_client_secret or "")
        ):
            return json_response({"error": "invalid_client"}, 401, no_store)
        token = f"ref-token-{secrets.token_urlsafe(24)}"
        ttl = behaviour.oauth_token_ttl_seconds
        self._tokens[token] = time.monotonic() + ttl
        self.tokens_issued += 1
        issued = {"access_token": token, "token_type": "bearer", "expires_in": ttl}
        return json_response(issued, 200, no_store)

    async def stats(self, request: Request) -> Response:
        return json_response(
            {
                "tokens_issued": self.tokens_issued,
                "token_requests": self.token_requests,
                "unauthorized": self.unauthorized,
                "requests": dict(self.requests),
                "tasks": len(self.store),
                "task_states": self.store.states(),
            }
        )

    async def get_behaviour(self, request: Request) -> Response:
        return json_response(self.behaviour.model_dump(mode="json"))

    async def set_behaviour(self, request: Request) -> Response:
        try:
            self.behaviour = AgentBehaviour.model_validate_json(await request.body())
        except ValidationError as exc:
            return json_response({"detail": json.loads(exc.json(include_url=False))}, 422)
        return json_response(self.behaviour.model_dump(mode="json"))


def create_app(
    behaviour: AgentBehaviour | None = None,
    *,
    name: str = DEFAULT_NAME,
    agent_id: str = DEFAULT_AGENT_ID,
    skill: Skill | None = None,
    task_store: str | None = None,
) -> Starlette:
    """The reference agent as an ASGI app; its :class:`ReferenceAgent` is ``app.state.agent``.

    ``skill`` does the work of each task (default: the echo skill, see ``skills.py``). ``task_store``: an
    SQLite file that keeps the tasks across restarts (see ``journal.py``); without it they live in memory.
    """
    agent = ReferenceAgent(behaviour or AgentBehaviour(), name=name, agent_id=agent_id, skill=skill,
                           task_store=task_store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        agent.store.recover()
        yield
        await agent.store.shutdown()

    app = Starlette(
        routes=[
            Route("/agent-card.json", agent.card, methods=["GET"]),
            Route("/a2a/", agent.rpc, methods=["POST"]),
            Route("/a2a", agent.redirect_rpc, methods=["POST"]),
            Route("/oauth/token", agent.oauth_token, methods=["POST"]),
            Route("/_control/stats", agent.stats, methods=["GET"]),
            Route("/_control/behaviour", agent.get_behaviour, methods=["GET"]),
            Route("/_control/behaviour", agent.set_behaviour, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.agent = agent
    return app
