"""
AgentVault wire protocol: models, errors, JSON-RPC and SSE decoding, clients and wait strategies.

This package imports nothing from Airflow, so it can be tested, reused and reasoned about on its own;
the hook, operators, sensors and triggers are thin Airflow adapters on top of it.
"""

from airflow_agentvault.protocol.errors import (
    AgentUnreachableError,
    AgentVaultError,
    InputRequiredError,
    NotAuthorizedError,
    ProtocolViolationError,
    TaskCanceledError,
    TaskFailedError,
    TaskNotFoundError,
    WaitTimeoutError,
)
from airflow_agentvault.protocol.models import (
    AgentCard,
    Artifact,
    Message,
    Task,
    TaskArtifactEvent,
    TaskMessageEvent,
    TaskState,
    TaskStatusEvent,
)

__all__ = [
    "AgentCard",
    "AgentUnreachableError",
    "AgentVaultError",
    "Artifact",
    "InputRequiredError",
    "Message",
    "NotAuthorizedError",
    "ProtocolViolationError",
    "Task",
    "TaskArtifactEvent",
    "TaskCanceledError",
    "TaskFailedError",
    "TaskMessageEvent",
    "TaskNotFoundError",
    "TaskState",
    "TaskStatusEvent",
    "WaitTimeoutError",
]
