"""
A stage run's timing: validated once, its absolute deadline fixed once, then carried to the trigger.

Apart from :mod:`options` (which reads the operators' signatures, so imports them) because the
operators, the sensor and the triggers all use it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_agentvault.compat import AirflowFailException
from airflow_agentvault.protocol.timing import InvalidTimingError, Timing


def parse_timing(timing: Timing | Mapping[str, Any] | None) -> Timing:
    """Validate rendered timing values; bad ones fail the task at once with the param named."""
    if isinstance(timing, Timing):
        return timing
    try:
        return Timing.parse(dict(timing) if timing is not None else None)
    except InvalidTimingError as exc:
        raise AirflowFailException(str(exc)) from None


@dataclass(frozen=True, slots=True)
class StageTiming:
    """
    One run's timing, validated once, and its absolute epoch deadline, fixed once.

    The operator makes it when the wait starts; a trigger carries its :meth:`trigger_kwargs` (plain
    numbers, never a credential) and, restored in the triggerer, goes on to the same deadline, so a
    triggerer restart does not extend a timeout. It is the timing part of what a trigger needs to run a
    whole stage.
    """

    timing: Timing
    started_at: float
    deadline: float

    @classmethod
    def begin(cls, timing: Timing | Mapping[str, Any] | None, started_at: float | None = None) -> StageTiming:
        """The wait starts now (or at ``started_at``, an earlier reschedule's start): validate, fix the deadline."""
        valid = parse_timing(timing)
        started = time.time() if started_at is None else float(started_at)
        return cls(valid, started, valid.deadline_after(started))

    @classmethod
    def carried(cls, timing: Timing | Mapping[str, Any] | None, started_at: float, deadline: float) -> StageTiming:
        """What a trigger was constructed with: the operator's Timing, or its serialized knobs."""
        valid = timing if isinstance(timing, Timing) else shared_timing(timing)
        return cls(valid, float(started_at), float(deadline))

    def trigger_arguments(self) -> dict[str, Any]:
        """The keywords a trigger is constructed with, the timing still validated (not dumped yet)."""
        return {"timing": self.timing, "started_at": self.started_at, "deadline": self.deadline}

    def trigger_kwargs(self) -> dict[str, Any]:
        """The same as plain JSON values, for ``serialize()``."""
        return {**self.trigger_arguments(), "timing": self.timing.model_dump()}


def shared_timing(knobs: Mapping[str, Any] | None) -> Timing:
    """
    A trigger's timing from its serialized knobs, one instance per distinct timing.

    A triggerer holding thousands of waits of a few pipelines then keeps a few Timings, not one each
    (about a kilobyte apiece); Timing is frozen, so sharing it is safe. Each value's type is part of the
    key, so ``1`` and ``True`` are validated apart; knobs that cannot be a key are validated each time.
    """
    values = dict(knobs or {})
    try:
        return _restored(tuple(sorted((name, type(value), value) for name, value in values.items())))
    except TypeError:  # an unhashable value or a key that does not sort: validation names it
        return Timing.parse(values)


@functools.lru_cache(maxsize=256)
def _restored(knobs: tuple[tuple[str, type, Any], ...]) -> Timing:
    """The validated Timing of one key of :func:`shared_timing`."""
    return Timing.parse({name: value for name, _, value in knobs})
