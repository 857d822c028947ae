"""
One flat error hierarchy for everything that can go wrong talking to an agent.

Users (and retry policies) must tell apart "agent not reachable", "task unknown", "not authorised",
"agent failed the task" and "agent spoke nonsense" by type, not by parsing strings. Every message names
the agent URL, the method and the task id; none contains a credential (callers never pass one in, and
URLs are stripped of user-info and query strings before they are quoted).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str | None) -> str:
    """Drop user-info, query and fragment: they are where credentials hide in URLs."""
    if not url:
        return "<unknown agent>"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class AgentVaultError(Exception):
    """Base class of every error raised while talking to an agent."""

    retryable = False

    def __init__(
        self,
        detail: str,
        *,
        agent_url: str | None = None,
        method: str | None = None,
        task_id: str | None = None,
        code: int | None = None,
        data: Any = None,
    ) -> None:
        self.detail = detail
        self.agent_url = redact_url(agent_url) if agent_url else None
        self.method = method
        self.task_id = task_id
        self.code = code
        self.data = data
        super().__init__(self._render())

    def _render(self) -> str:
        where = [f"agent {self.agent_url or '<unknown agent>'}"]
        if self.method:
            where.append(f"method {self.method}")
        if self.task_id:
            where.append(f"task {self.task_id}")
        code = f" (code {self.code})" if self.code is not None else ""
        return f"{self.detail}{code} [{', '.join(where)}]"

    def __reduce__(self) -> tuple[Any, ...]:
        """Keep the structured fields through pickling (Airflow ships exceptions between processes)."""
        return (
            _rebuild,
            (type(self), self.detail, self.agent_url, self.method, self.task_id, self.code, self.data),
        )


def _rebuild(cls: type[AgentVaultError], detail: str, agent_url: str | None, method: str | None,
             task_id: str | None, code: int | None, data: Any) -> AgentVaultError:
    return cls(detail, agent_url=agent_url, method=method, task_id=task_id, code=code, data=data)


class AgentUnreachableError(AgentVaultError):
    """Connection refused, DNS failure, timeout or a 5xx: the agent may come back."""

    retryable = True
    #: Seconds the agent asked us to wait (``Retry-After`` on 429/503), if it did.
    retry_after: float | None = None


class AmbiguousSendError(AgentVaultError):
    """
    A request that starts a task failed after it was sent (reset, timeout, 5xx from a gateway).

    The agent may have started the task anyway, so a blind resend could run it twice; the message
    says so. Not retryable by the follower, and the default retry policy fails it without retry.
    """


class TaskNotFoundError(AgentVaultError):
    """The agent does not (yet) know the task: JSON-RPC -32001, or a bare 500 from an agent without handlers."""

    retryable = True


class NotAuthorizedError(AgentVaultError):
    """HTTP 401/403: retrying with the same credentials cannot help."""


class ProtocolViolationError(AgentVaultError):
    """The agent answered something the protocol does not allow: bad JSON, unknown event, wrong content type."""


class TaskOutcomeError(AgentVaultError):
    """The task reached a state that ends the wait without a result; carries the agent's own message."""

    def __init__(self, detail: str, *, agent_message: str | None = None, **kwargs: Any) -> None:
        self.agent_message = agent_message
        super().__init__(detail, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_outcome,
            (type(self), self.detail, self.agent_message, self.agent_url, self.method, self.task_id),
        )


def _rebuild_outcome(cls: type[TaskOutcomeError], detail: str, agent_message: str | None, agent_url: str | None,
                     method: str | None, task_id: str | None) -> TaskOutcomeError:
    return cls(detail, agent_message=agent_message, agent_url=agent_url, method=method, task_id=task_id)


class TaskFailedError(TaskOutcomeError):
    """The agent reports the task FAILED."""


class TaskCanceledError(TaskOutcomeError):
    """The task was CANCELED (by a user, the agent, or our on_kill)."""


class InputRequiredError(TaskOutcomeError):
    """The agent stopped in INPUT_REQUIRED and waits for an answer; ``agent_message`` holds its question."""


class AuthRequiredError(TaskOutcomeError):
    """The agent stopped in AUTH_REQUIRED (A2A): it needs credentials out of band."""


class QuestionUnansweredError(TaskOutcomeError):
    """Nobody answered the agent's question in time (or a person rejected it); the task was canceled."""


class TooManyQuestionsError(TaskOutcomeError):
    """The agent asked more rounds of questions than the stage allows; the task was canceled."""


class TaskLostError(AgentVaultError):
    """The agent showed the task, then stopped knowing it (restarted with an in-memory task store)."""


class WaitTimeoutError(AgentVaultError):
    """A bounded wait (verification attempts, overall timeout) ran out; the message says what was tried."""


class ResultTooLargeError(AgentVaultError):
    """The assembled result exceeds the configured XCom size limit."""


class AnswerTooLargeError(AgentVaultError):
    """
    An answer's body exceeded the connection's ``max_answer_bytes``: reading stopped there, so a huge or
    endless answer never fills a worker's or the triggerer's memory. Retrying would read it again.
    """


class StreamDisconnectedError(AgentUnreachableError):
    """The SSE stream ended or broke before a terminal state: a disconnect, never a success."""


class StreamUnavailableError(StreamDisconnectedError):
    """
    The agent offers no stream for this task (it already finished, or its SDK keeps none).

    A :class:`StreamDisconnectedError`, so the follower does not retry the subscription but reads the
    task with ``get`` at once; nothing is lost, because the result always comes from ``get``.
    """


class UntrustedCardError(AgentVaultError):
    """The agent card, or a URL it names, is not trusted by the connection's settings: every try meets the same."""


class CardSignatureError(UntrustedCardError):
    """The card's signature is missing (where required), malformed, by an unknown key or does not match."""


class UntrustedEndpointError(UntrustedCardError):
    """The card names an endpoint on another origin, or inside a private network, that the connection does not allow."""


class EventTooLargeError(StreamDisconnectedError):
    """
    One stream event grew past the connection's ``max_event_bytes``: the stream is dropped at once and the
    task read with ``get`` (a resubscription would meet the same event).
    """
