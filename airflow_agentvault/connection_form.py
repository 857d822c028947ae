"""
The ``agentvault`` connection form: fields, labels and placeholders shown in the Airflow UI.

Kept free of Airflow imports because Airflow reads it through ``get_provider_info`` while it is itself
still starting up.
"""

from __future__ import annotations

from typing import Any

AUTH_TYPES = ("none", "api_key", "bearer", "oauth2")

#: The connection's ``dialect`` choices: the names of ``protocol.dialects.DIALECTS`` plus ``auto``
#: (kept literal here, like AUTH_TYPES, so the form needs no protocol import; a unit test keeps them equal).
DIALECT_CHOICES = ("agentvault", "a2a-0.3", "a2a-1.0", "a2a-rest", "auto")

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {
        "host": "Agent URL (JSON-RPC endpoint, base URL or agent card URL)",
        "login": "OAuth2 client id",
        "password": "API key / bearer token / OAuth2 client secret",
    },
    "placeholders": {
        "host": "http://127.0.0.1:8000/a2a/",
        "login": "client id (OAuth2 only)",
        "password": "secret (not needed for auth none)",
        "extra": '{"auth_type": "api_key", "key_header": "X-Api-Key"}',
    },
}

CONN_FIELDS: dict[str, Any] = {
    "auth_type": {
        "label": "Auth type",
        "description": "none, api_key (password sent in a header), bearer (password as token) or oauth2",
        "schema": {"type": ["string", "null"], "default": "none", "enum": list(AUTH_TYPES)},
    },
    "key_header": {
        "label": "API key header",
        "schema": {"type": ["string", "null"], "default": "X-Api-Key"},
    },
    "oauth_endpoint": {
        "label": "OAuth2 token URL",
        "description": "Client-credentials token endpoint (absolute, or relative to the agent URL)",
        "schema": {"type": ["string", "null"]},
    },
    "scope": {"label": "OAuth2 scope", "schema": {"type": ["string", "null"]}},
    "verify_tls": {
        "label": "Verify TLS certificates",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "ca_bundle": {
        "label": "CA bundle path",
        "description": "PEM file of CAs to trust instead of the system store",
        "schema": {"type": ["string", "null"]},
    },
    "dialect": {
        "label": "Protocol dialect",
        "description": "agentvault (tasks/send ...), a2a-0.3 (message/send ...), a2a-1.0 (SendMessage ...), "
        "a2a-rest (A2A 1.0 HTTP+JSON; the URL is the binding's base) or auto (read the agent card)",
        "schema": {"type": ["string", "null"], "default": "agentvault", "enum": list(DIALECT_CHOICES)},
    },
    "card_url": {"label": "Agent card URL (optional)", "schema": {"type": ["string", "null"]}},
    "card_keys": {
        "label": "Agent card public keys (JWKS)",
        "description": "JSON of the public keys (a JWKS, a list of JWKs or one JWK) a signed agent card is "
        "verified with; no private or symmetric keys",
        "schema": {"type": ["string", "null"]},
    },
    "require_signed_card": {
        "label": "Require a signed agent card",
        "description": "Refuse an agent card without a signature that verifies",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "trust_card_jwks": {
        "label": "Trust the card's key set URL (jku)",
        "description": "Fetch the keys a card's signature names when the connection's keys lack them",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "allow_other_origins": {
        "label": "Allow a card endpoint on another origin",
        "description": "Use an endpoint (or key set) the agent card names on another host or port than this URL",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "allow_private_networks": {
        "label": "Allow a card endpoint in a private network",
        "description": "With the above: allow one resolving to a private, loopback, link-local or unique-local address",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "max_answer_bytes": {
        "label": "Largest answer (bytes)",
        "description": "An answer body above this ends the call with AnswerTooLargeError instead of filling "
        "the worker's or the triggerer's memory (default 64 MiB)",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "max_event_bytes": {
        "label": "Largest stream event (bytes)",
        "description": "A stream event above this drops the stream; the task is read with get (default 8 MiB)",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "push": {
        "label": "Wait by push notification",
        "description": "off (stream), on (push where the dialect has it) or auto (push where the agent card offers "
        "it): a deferred stage then holds no connection; the agent calls the triggerer back",
        "schema": {"type": ["string", "null"], "default": "off", "enum": ["auto", "on", "off"]},
    },
    "push_bind": {
        "label": "Push receiver bind address",
        "description": "host[:port] the triggerer's receiver listens on (default 127.0.0.1 and a free port)",
        "schema": {"type": ["string", "null"]},
    },
    "push_url": {
        "label": "Push receiver URL agents call",
        "description": "the receiver's base URL as agents reach it (behind a proxy); default: the bound address",
        "schema": {"type": ["string", "null"]},
    },
    "push_safety_poll": {
        "label": "Push safety poll (seconds)",
        "description": "how often a task waited for by push is read anyway, in case a notification is lost",
        "schema": {"type": ["number", "null"], "default": 60},
    },
}
