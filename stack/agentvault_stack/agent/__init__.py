"""A reference AgentVault agent that speaks the SDK's A2A wire format, with switchable failure modes.

Tests (and local DAG runs) need a real agent; the SDK cannot share an environment with Airflow, so
this package re-implements its wire format on starlette + uvicorn. It imports nothing from Airflow
or from the provider's client code, so tests against it check the client, not a shared model.
"""

from agentvault_stack.agent.app import create_app
from agentvault_stack.agent.behaviour import OVERRIDE_KEY, AgentBehaviour
from agentvault_stack.agent.contract import Skill, SkillRequest, SkillResult
from agentvault_stack.agent.server import ReferenceAgentServer
from agentvault_stack.agent.skills import get_skill

__all__ = [
    "OVERRIDE_KEY",
    "AgentBehaviour",
    "ReferenceAgentServer",
    "Skill",
    "SkillRequest",
    "SkillResult",
    "create_app",
    "get_skill",
]
