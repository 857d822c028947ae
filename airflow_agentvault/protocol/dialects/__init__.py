"""
The protocol dialects an agent may speak, each a codec behind the same clients.

=============  =====================================================  =============================
dialect        wire                                                    codec
=============  =====================================================  =============================
agentvault     AgentVault JSON-RPC (``tasks/send`` ...), named SSE      :mod:`agentvault`
a2a-0.3        A2A 0.3 JSON-RPC (``message/send`` ...), kind/final      :mod:`a2a_v03`
a2a-1.0        A2A 1.0 JSON-RPC (``SendMessage`` ...), A2A-Version      :mod:`a2a_v10`
a2a-rest       A2A 1.0 HTTP+JSON (``POST /message:send`` ...)           :mod:`a2a_rest`
=============  =====================================================  =============================

``auto`` is not a dialect but a choice made by :func:`~airflow_agentvault.protocol.operations.resolve`
from the agent card.
"""

from __future__ import annotations

from airflow_agentvault.protocol.codec import Codec
from airflow_agentvault.protocol.dialects.a2a_rest import RestCodec
from airflow_agentvault.protocol.dialects.a2a_v03 import V03Codec
from airflow_agentvault.protocol.dialects.a2a_v10 import V10Codec
from airflow_agentvault.protocol.dialects.agentvault import AgentVaultCodec
from airflow_agentvault.protocol.dialects.cards import Discovered, DiscoveredCard

AGENTVAULT = "agentvault"
AUTO = "auto"

#: dialect name -> its codec class.
DIALECTS: dict[str, type[Codec]] = {
    AGENTVAULT: AgentVaultCodec,
    "a2a-0.3": V03Codec,
    "a2a-1.0": V10Codec,
    "a2a-rest": RestCodec,
}

#: What a connection's ``dialect`` may say.
CHOICES = (*DIALECTS, AUTO)


def codec_for(dialect: str) -> Codec:
    try:
        return DIALECTS[dialect]()
    except KeyError:
        raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}") from None


__all__ = ["AGENTVAULT", "AUTO", "CHOICES", "DIALECTS", "Discovered", "DiscoveredCard", "codec_for"]
