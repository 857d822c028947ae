"""
The one validated timing model for waiting on an agent task.

Hand-written orchestrators hard-code every number (10 s initial sleep, 3 checks, 3 subscriptions 5 s apart,
then polling). Here each is a knob with a fast default (no fixed sleep: a fast agent completes with well
under a second of overhead) and their usual values are the ``SLOW_LLM`` preset. Values arrive from DAG
params as strings; a bad one is rejected with a message that names it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class InvalidTimingError(ValueError):
    """A timing value is missing its bounds; the message names the param."""


class Timing(BaseModel):
    """How long and how often to wait for, subscribe to and poll an agent task (seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    initial_delay: float = Field(0.0, ge=0, description="Wait this long after the task starts before the first check.")
    verify_attempts: int = Field(30, ge=1, description="How many times to check that the task exists before giving up.")
    verify_interval: float = Field(0.2, gt=0, description="Seconds between existence checks (the sensor's poke interval).")
    verify_backoff: float = Field(1.5, ge=1, description="Each existence-check interval is the previous one times this.")
    verify_max_interval: float = Field(5.0, gt=0, description="Cap on the growing existence-check interval.")
    sse_attempts: int = Field(3, ge=1, description="How many times to try the SSE subscription before polling.")
    sse_retry_delay: float = Field(0.5, ge=0, description="Seconds before retrying a failed subscription.")
    sse_retry_backoff: float = Field(2.0, ge=1, description="Each subscription retry delay is the previous one times this.")
    poll_interval: float = Field(1.0, gt=0, description="Seconds between tasks/get calls when polling.")
    read_timeout: float = Field(300.0, gt=0, description="Longest silence tolerated on a stream (an LLM may think for minutes).")
    overall_timeout: float = Field(3600.0, gt=0, description="Give up waiting for the task after this many seconds.")
    lost_grace: float = Field(10.0, ge=0, description="Seconds a task the agent had shown may answer 'Task not found' "
                              "before the wait ends as lost (an agent restart); replicas behind a load balancer may "
                              "lag a little.")

    @classmethod
    def parse(cls, values: dict[str, Any] | None = None, base: Timing | None = None) -> Timing:
        """Validate ``values`` (None entries mean "keep the base value") into a Timing, naming bad params."""
        if values is not None and not isinstance(values, dict):
            raise InvalidTimingError(f"timing must be a mapping of knob names to values, got {type(values).__name__}")
        merged = (base or cls()).model_dump()
        merged.update({k: v for k, v in (values or {}).items() if v is not None and v != ""})
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                name = ".".join(str(p) for p in err["loc"])
                problems.append(f"param '{name}': {err['msg']} (got {err.get('input')!r})")
            raise InvalidTimingError("invalid timing: " + "; ".join(problems)) from None

    def deadline_after(self, start: float) -> float:
        """When a wait that began at ``start`` gives up (the one place the overall timeout is added)."""
        return start + self.overall_timeout

    def verify_interval_for(self, attempt: int) -> float:
        """Interval after existence check number ``attempt`` (1-based), growing and capped."""
        # the exponent is capped first: the cap is reached long before, and a large power would overflow
        return min(self.verify_interval * self.verify_backoff ** min(max(attempt - 1, 0), 64),
                   self.verify_max_interval)

    def sse_delay_for(self, attempt: int) -> float:
        """Delay after failed subscription number ``attempt`` (1-based)."""
        return self.sse_retry_delay * self.sse_retry_backoff ** min(max(attempt - 1, 0), 64)


#: A hand-written orchestrator's usual fixed values, for agents backed by a slow local LLM.
SLOW_LLM = Timing(
    initial_delay=10.0,
    verify_attempts=3,
    verify_interval=5.0,
    verify_backoff=1.0,
    verify_max_interval=5.0,
    sse_attempts=3,
    sse_retry_delay=5.0,
    sse_retry_backoff=1.0,
    poll_interval=5.0,
    read_timeout=900.0,
    overall_timeout=4 * 3600.0,
    lost_grace=30.0,
)

PRESETS: dict[str, Timing] = {"fast": Timing(), "slow_llm": SLOW_LLM}
