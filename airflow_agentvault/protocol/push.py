"""
Waiting by push notification: whether to, and registering / removing the task's push config (core routines).

A wait by push holds no connection to the agent: the follower registers a push config naming a receiver
of ours and a per-task secret token, then reads the task with ``get`` (the truth) each time the
receiver's doorbell for the task rings, or when the slow safety poll comes round (a notification that
never arrives costs at most that interval). A notification is only a wake-up: its body is never trusted.
Registration that fails (the agent has no push, refuses the URL, or cannot be reached) is no failure: the
follower streams instead. The config is removed (best effort) when the wait ends while the task goes on;
a task that ended sends no more notifications, so its config is left with it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from airflow_agentvault.protocol import errors, operations, tracing
from airflow_agentvault.protocol.exchange import Program
from airflow_agentvault.protocol.operations import Agent

PUSH_AUTO, PUSH_ON, PUSH_OFF = "auto", "on", "off"
PUSH_MODES = (PUSH_AUTO, PUSH_ON, PUSH_OFF)

#: Seconds between the safety reads of a task waited for by push (a notification may be lost).
DEFAULT_SAFETY_POLL = 60.0


@dataclass(frozen=True, slots=True)
class PushSettings:
    """A connection's push settings: the mode, where the receiver binds, the URL agents call, the safety poll."""

    mode: str = PUSH_OFF
    bind_host: str = "127.0.0.1"
    bind_port: int = 0  # 0: an ephemeral port
    public_url: str | None = None  # the receiver's base URL as agents reach it (behind a proxy); else the bound one
    safety_poll: float = DEFAULT_SAFETY_POLL

    def __post_init__(self) -> None:
        if self.mode not in PUSH_MODES:
            raise ValueError(f"push must be one of {', '.join(PUSH_MODES)}, got {self.mode!r}")
        if not self.safety_poll > 0:
            raise ValueError(f"push_safety_poll must be a positive number of seconds, got {self.safety_poll!r}")


@dataclass(slots=True)
class PushPlan:
    """
    One task's wait by push: the URL and token the agent is given, the config id, and the receiver's doorbell.

    ``token`` is chosen here for this wait only and lives in memory: never in trigger kwargs, logs or spans.
    """

    url: str
    doorbell: Any  # ``async wait(seconds) -> bool``
    safety_poll: float = DEFAULT_SAFETY_POLL
    token: str = ""
    config_id: str = ""

    def __post_init__(self) -> None:
        self.token = self.token or secrets.token_urlsafe(32)
        self.config_id = self.config_id or "airflow-" + secrets.token_hex(8)

    def __repr__(self) -> str:  # never the token
        return f"PushPlan(url={self.url!r}, config_id={self.config_id!r}, safety_poll={self.safety_poll!r})"


def wants_push(mode: str, agent: Agent) -> bool:
    """
    Whether to wait by push: ``on`` where the dialect has push at all, ``auto`` where the card also offers it.

    AgentVault has no push notifications, so it never waits by push.
    """
    if mode == PUSH_OFF or agent.codec.push_delete_request(agent.endpoint, "-", "-") is None:
        return False
    return mode == PUSH_ON or agent.push_offered


def register(agent: Agent, task_id: str, plan: PushPlan, logger: Any) -> Program[bool]:
    """Ask the agent to call back; False (and why, in the log) when it will not, so the caller streams instead."""
    request = agent.codec.push_register_request(agent.endpoint, task_id, plan.config_id, plan.url, plan.token)
    if request is None:
        return False
    try:
        yield from operations.call(agent, request)
    except errors.AgentVaultError as exc:
        tracing.failure(tracing.PUSH_REGISTERED, exc)
        logger.warning("The agent did not take a push notification config for task %s (%s); streaming instead",
                       task_id, exc.detail)
        return False
    tracing.event(tracing.PUSH_REGISTERED, **{"agentvault.push.config_id": plan.config_id})
    logger.info("Waiting for task %s by push notification to %s (config %s; safety read every %g s)", task_id,
                errors.redact_url(plan.url), plan.config_id, plan.safety_poll)
    return True


def unregister(agent: Agent, task_id: str, plan: PushPlan, logger: Any) -> Program[None]:
    """Remove the task's push config; best effort (a failure is logged, never raised)."""
    request = agent.codec.push_delete_request(agent.endpoint, task_id, plan.config_id)
    if request is None:
        return
    try:
        yield from operations.fetch(agent, request)
    except errors.AgentVaultError as exc:
        logger.info("Could not remove push config %s of task %s (%s); the agent may call once more, unanswered",
                    plan.config_id, task_id, exc.detail)
