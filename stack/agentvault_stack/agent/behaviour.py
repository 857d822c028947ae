"""Switches that make the reference agent misbehave in the ways real AgentVault agents do.

One model serves three entry points: the server default (constructor / CLI flags / ``POST
/_control/behaviour``), and a per-task override read from the first user message's
``metadata["reference_agent"]``, so one running agent can serve many test scenarios.

Asking a person (human in the loop): ``questions`` makes a task stop in INPUT_REQUIRED once per
question, ``require_credential`` makes it stop in AUTH_REQUIRED until a follow-up carries the
credential. ``input_required``/``input_question`` is the older one-question switch, kept as it was.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Key of the incoming message's ``metadata`` whose dict overrides the behaviour for that task.
OVERRIDE_KEY = "reference_agent"

#: Fields that only make sense per server: authentication happens before any message is read.
SERVER_ONLY_FIELDS = frozenset(
    {"api_key", "bearer_token", "oauth_client_id", "oauth_client_secret", "oauth_token_ttl_seconds"}
)


DEFAULT_AUTH_QUESTION = "This agent needs a credential to continue: send it as a data part {'credential': ...}."


class Question(BaseModel):
    """One question for a person: its text and, optionally, short choices to offer."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    options: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, value: Any) -> Any:
        """A bare string is a question without options."""
        return {"text": value} if isinstance(value, str) else value


class AgentBehaviour(BaseModel):
    """How the reference agent behaves; the defaults give a fast agent that succeeds."""

    # Unknown keys are rejected so a typo in a test's override fails loudly (-32602).
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    work_seconds: float = Field(0.2, ge=0, description="Total simulated work duration in seconds.")
    visible_after_seconds: float = Field(
        0.0,
        ge=0,
        description="For this long after tasks/send the task answers -32001 'Task not found' "
        "(the task still runs): the delayed visibility that breaks fixed-sleep orchestrators.",
    )
    tokens: int = Field(
        0, ge=0, description="Emit this many task_message events, one word of the answer each (with the "
        "whitespace before it, as an LLM streams)."
    )
    tokens_per_second: float | None = Field(
        None,
        gt=0,
        description="Pace of the token messages (slow LLM); alone, streams every word of the answer.",
    )
    think_seconds: float = Field(
        0.0,
        ge=0,
        description="Seconds between WORKING and the answer's first token (a local LLM reading its prompt).",
    )
    fail: bool = Field(False, description="End the task FAILED with a reason.")
    input_required: bool = Field(
        False, description="Stop in INPUT_REQUIRED with a question; a follow-up tasks/send resumes it."
    )
    input_question: str = Field(
        "Which time range should the research cover?",
        min_length=1,
        description="The question asked when input_required is set.",
    )
    questions: list[Question] = Field(
        default_factory=list,
        description="Ask these one per round (INPUT_REQUIRED); each follow-up's answer is recorded and "
        "the final answer lists them. A question is a string or {text, options}.",
    )
    require_credential: str | None = Field(
        None,
        description="Stop in AUTH_REQUIRED first; a follow-up with data {'credential': <this value>} resumes "
        "the task, any other follow-up fails it (the value is never echoed).",
    )
    auth_question: str = Field(
        DEFAULT_AUTH_QUESTION, min_length=1, description="What the task says when it asks for the credential."
    )
    drop_stream_after_events: int | None = Field(
        None, ge=0, description="Close each SSE stream after N events, without a terminal state."
    )
    subscribe_not_found: bool = Field(
        False,
        description="tasks/sendSubscribe always answers 200 application/json -32001 while tasks/get "
        "works (an agent whose router uses another task store).",
    )
    artifact_count: int = Field(1, ge=0, description="How many result artifacts a completed task has.")
    api_key: str | None = Field(None, description="Require header X-Api-Key with this value (else 401).")
    bearer_token: str | None = Field(
        None, description="Accept header 'Authorization: Bearer <token>' with this static token."
    )
    oauth_client_id: str | None = Field(
        None, description="Enable POST /oauth/token (client credentials) for this client id."
    )
    oauth_client_secret: str | None = Field(None, description="Client secret for POST /oauth/token.")
    oauth_token_ttl_seconds: int = Field(
        3600, ge=1, description="expires_in of issued OAuth tokens; expired tokens get 401."
    )

    @field_validator("questions", mode="before")
    @classmethod
    def _bare_questions(cls, value: Any) -> Any:
        return [Question.of(item) for item in value] if isinstance(value, list) else value

    @property
    def rounds(self) -> list[Question]:
        """The questions a task asks, in order: ``questions``, else the single ``input_question``."""
        if self.questions:
            return list(self.questions)
        return [Question(text=self.input_question)] if self.input_required else []

    @property
    def auth_required(self) -> bool:
        """Whether requests to the JSON-RPC endpoint must carry a credential."""
        return bool(self.api_key or self.bearer_token or self.oauth_enabled)

    @property
    def oauth_enabled(self) -> bool:
        """Whether the OAuth2 client-credentials token endpoint is on."""
        return bool(self.oauth_client_id and self.oauth_client_secret)

    def with_overrides(self, overrides: dict[str, Any] | None) -> AgentBehaviour:
        """This behaviour with a per-task override applied (validated; auth fields ignored)."""
        if not overrides:
            return self
        task_fields = {k: v for k, v in overrides.items() if k not in SERVER_ONLY_FIELDS}
        return type(self).model_validate({**self.model_dump(), **task_fields})
