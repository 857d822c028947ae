"""A card signed by a2a-sdk 1.3.0's own signing utilities, verified by the provider (good key, wrong key).

One real server process (``a2a_v1_agent.py --sign-key``) on 127.0.0.1: its card is the SDK's, signed by
the SDK, served by the SDK (with the 0.3 fields it merges in for older clients).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from airflow_agentvault.hooks.agentvault import AgentVaultHook
from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.client import TaskFollower
from airflow_agentvault.protocol.models import Message, TaskState, TextPart
from airflow_agentvault.protocol.timing import Timing

from interop import servers

HERE = Path(__file__).resolve().parent
CONN = "signed_card_agent"


def jwk_pair(kid: str) -> tuple[dict, dict]:
    private = ec.generate_private_key(ec.SECP256R1())
    return ({**json.loads(ECAlgorithm.to_jwk(private)), "kid": kid},
            {**json.loads(ECAlgorithm.to_jwk(private.public_key())), "kid": kid})


SIGNING, PUBLIC = jwk_pair("agent-key-1")
_, WRONG = jwk_pair("agent-key-1")  # the same key id, another key


@pytest.fixture(scope="module")
def signed_agent(tmp_path_factory) -> Iterator[str]:
    key_file = tmp_path_factory.mktemp("signing") / "key.jwk"
    key_file.write_text(json.dumps(SIGNING))
    proc, base_url = servers.sdk_venv.start_server(
        [sys.executable, "a2a_v1_agent.py", "--port", "{port}", "--sign-key", str(key_file)],
        cwd=HERE, ready_url="/.well-known/agent-card.json", timeout=servers.SERVER_START_TIMEOUT,
        name="interop-signed-card")
    try:
        yield base_url
    finally:
        servers.stop(proc)


def hook(monkeypatch, base_url: str, **extra) -> AgentVaultHook:
    extra = {"dialect": "auto", "require_signed_card": True, **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(
        {"conn_type": "agentvault", "host": f"{base_url}/", "extra": extra}))
    return AgentVaultHook(CONN)


def test_the_sdks_signature_verifies_and_the_agent_answers(monkeypatch, signed_agent):
    served = requests.get(f"{signed_agent}/.well-known/agent-card.json", timeout=10).json()
    assert served["signatures"] and served["url"]  # signed by the SDK, served with the 0.3 fields merged in
    ok, message = hook(monkeypatch, signed_agent, card_keys=[PUBLIC]).test_connection()
    assert ok, message
    assert "card signature verified with the connection's key agent-key-1 (ES256)" in message
    client = hook(monkeypatch, signed_agent, card_keys=[PUBLIC]).get_client()
    task_id = client.send(Message(role="user", parts=[TextPart(content="sleep=0")]))
    assert TaskFollower(client, Timing()).follow(task_id).task.state is TaskState.COMPLETED


def test_a_wrong_key_is_a_clear_error(monkeypatch, signed_agent):
    with pytest.raises(errors.CardSignatureError, match=r"key id 'agent-key-1', ES256\): does not match the card"):
        hook(monkeypatch, signed_agent, card_keys=[WRONG]).get_client()
    ok, message = hook(monkeypatch, signed_agent, card_keys=[WRONG]).test_connection()
    assert not ok and "no valid signature" in message
