"""Optional LLM backend for the text-writing research stages (any OpenAI-compatible server).

Set ``AGENTVAULT_LLM_BASE_URL`` (e.g. ``http://127.0.0.1:11434`` for Ollama, ``http://127.0.0.1:8080``
for llama.cpp, ``http://127.0.0.1:8000/v1`` for vLLM) and ``AGENTVAULT_LLM_MODEL``; optionally
``AGENTVAULT_LLM_API_KEY`` (sent as a bearer token) and ``AGENTVAULT_LLM_TIMEOUT`` (seconds, default
60). The stages ``topic_research``, ``synthesize`` and ``edit`` then ask the model with one plain
``POST <base>/v1/chat/completions`` (no streaming) and fall back to their deterministic path, with a
logged warning, when the call fails or the answer is unusable. Settings are read on every call, so
changing the environment takes effect without restarting the agents.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import httpx

ENV_BASE_URL = "AGENTVAULT_LLM_BASE_URL"
ENV_MODEL = "AGENTVAULT_LLM_MODEL"
ENV_API_KEY = "AGENTVAULT_LLM_API_KEY"
ENV_TIMEOUT = "AGENTVAULT_LLM_TIMEOUT"
DEFAULT_MODEL = "local-model"  # llama.cpp ignores the name; Ollama and vLLM need the real one
DEFAULT_TIMEOUT = 60.0

log = logging.getLogger("agentvault_stack.agent.research")

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```[\w-]*\n(.*?)\n```$", re.DOTALL)


class LLMError(RuntimeError):
    """The LLM call failed or its answer was unusable."""


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str = DEFAULT_MODEL
    api_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls) -> LLMConfig | None:
        """The configuration from the environment, or ``None`` when no base URL is set."""
        base_url = os.environ.get(ENV_BASE_URL, "").strip()
        if not base_url:
            return None
        try:
            timeout = float(os.environ.get(ENV_TIMEOUT) or DEFAULT_TIMEOUT)
        except ValueError:
            timeout = DEFAULT_TIMEOUT
        return cls(
            base_url=base_url,
            model=os.environ.get(ENV_MODEL, "").strip() or DEFAULT_MODEL,
            api_key=os.environ.get(ENV_API_KEY) or None,
            timeout=timeout,
        )

    @property
    def endpoint(self) -> str:
        """``<base>/v1/chat/completions`` (a base that already ends in ``/v1`` is not doubled)."""
        base = self.base_url.rstrip("/")
        return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"

    @property
    def label(self) -> str:
        """How artifacts name this generator: ``llm:<model>``."""
        return f"llm:{self.model}"


def chat(config: LLMConfig, system: str, user: str, *, max_tokens: int = 1500) -> str:
    """One chat completion; the answer's text (reasoning blocks and a wrapping code fence removed)."""
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    body = {
        "model": config.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": False,
    }
    try:
        response = httpx.post(config.endpoint, json=body, headers=headers, timeout=config.timeout)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(content, str):
        raise LLMError("the answer has no text content")
    text = _THINK.sub("", content).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise LLMError("the answer is empty")
    return text


def ask(stage: str, system: str, user: str, *, max_tokens: int = 1500) -> tuple[str | None, str]:
    """Ask the configured LLM; ``(text, generator label)``, or ``(None, "deterministic")`` to fall back.

    A failure is logged as a warning (never raised): the stage then does its deterministic work.
    """
    config = LLMConfig.from_env()
    if config is None:
        return None, "deterministic"
    try:
        return chat(config, system, user, max_tokens=max_tokens), config.label
    except LLMError as exc:
        log.warning(
            "research stage %s: LLM at %s failed (%s); using the deterministic path", stage, config.endpoint, exc
        )
        return None, "deterministic"


def rejected(stage: str, reason: str) -> tuple[None, str]:
    """Log that the LLM's answer was unusable (the stage falls back) and return the fallback pair."""
    config = LLMConfig.from_env()
    where = config.endpoint if config else "(unset)"
    log.warning(
        "research stage %s: LLM answer from %s unusable (%s); using the deterministic path", stage, where, reason
    )
    return None, "deterministic"
