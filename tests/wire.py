"""Access to the raw AgentVault captures shipped with the tests."""

from __future__ import annotations

from pathlib import Path

WIRE = Path(__file__).parent / "fixtures" / "wire" / "agentvault"


def capture_body(name: str) -> bytes:
    """The HTTP body of a captured response file (after the blank line)."""
    raw = (WIRE / name).read_bytes()
    return raw.split(b"\r\n\r\n", 1)[-1] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[-1]
