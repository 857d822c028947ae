"""
The one owner of a stage's options: which step takes each keyword.

A stage is three steps (send, wait, follow) or one task (the compact form). Which keyword goes to which
step is read from the operators' own ``__init__`` signatures, so a keyword added to an operator is sorted
by :class:`StageOptions` without touching the builders (``agent_stage``, ``@task.agentvault``, spec
files), and a keyword of the follow step never reaches the send step or the sensor; a keyword no step
takes is a TypeError that names it. The timing a run carries is :mod:`stage_timing`'s (the operators
import it; this module imports the operators, so it stays with the builders).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from airflow.sdk import BaseOperator

#: Airflow's keywords that shape a task's XCom: in a stage only the step giving the result may take them.
RESULT_SHAPING = frozenset({"multiple_outputs", "do_xcom_push"})
#: Keywords the builders set on each step themselves.
WIRED = frozenset({"task_id", "agent_task_id"})


def keywords_of(cls: type) -> frozenset[str]:
    """The keyword parameters of ``cls``'s own ``__init__`` and its bases', up to Airflow's BaseOperator."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is BaseOperator:
            break
        if "__init__" in klass.__dict__:
            names.update(_parameters(klass.__dict__["__init__"]))
    return frozenset(names)


@dataclass(frozen=True)
class Roles:
    """The keywords each step takes, read from the operators; ``common`` are Airflow's, for every step."""

    send: frozenset[str]
    wait: frozenset[str]
    follow: frozenset[str]
    compact: frozenset[str]
    common: frozenset[str]

    @property
    def follow_only(self) -> frozenset[str]:
        """What must never reach the send step or the sensor."""
        return (self.follow - self.send - self.wait - self.common) | RESULT_SHAPING

    @property
    def known(self) -> frozenset[str]:
        return self.send | self.wait | self.follow | self.compact | self.common | RESULT_SHAPING


@cache
def roles() -> Roles:
    """Read once, on first use: the operator modules import this one for :class:`StageTiming`."""
    from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator
    from airflow_agentvault.operators.stage import AgentVaultStageOperator
    from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor

    return Roles(send=keywords_of(AgentVaultInitiateOperator) - WIRED,
                 wait=keywords_of(AgentVaultTaskExistsSensor) - WIRED,
                 follow=keywords_of(AgentVaultStreamOperator) - WIRED,
                 compact=keywords_of(AgentVaultStageOperator) - WIRED,
                 common=_parameters(BaseOperator.__init__) - WIRED - RESULT_SHAPING)


def _parameters(init: Any) -> frozenset[str]:
    return frozenset(name for name, p in inspect.signature(init).parameters.items()
                     if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


@dataclass(frozen=True)
class StageOptions:
    """
    A stage's keyword arguments sorted once: what the send, wait and follow steps each take.

    Airflow's own keywords (``retries``, ``pool``...) go to every step, except those that shape the XCom
    (``multiple_outputs``), which go to the step whose output is the stage's result. In the compact form,
    :attr:`compact` holds everything for the one task; the rounds of questions take :attr:`follow`.
    """

    send: Mapping[str, Any]
    wait: Mapping[str, Any]
    follow: Mapping[str, Any]

    @classmethod
    def sort(cls, options: Mapping[str, Any], *, compact: bool = False, who: str = "agent stage") -> StageOptions:
        """Sort ``options``; TypeError naming each keyword that no step (or not the compact task) takes."""
        r = roles()
        _refuse(who, options, r, compact)

        def taking(keys: frozenset[str]) -> dict[str, Any]:
            return {k: v for k, v in options.items() if k in keys or k in r.common}

        follow = taking(r.follow | RESULT_SHAPING)
        if compact:
            return cls(send=taking(r.compact - r.follow), wait={}, follow=follow)
        return cls(send=taking(r.send), wait=taking(r.wait), follow=follow)

    @property
    def compact(self) -> dict[str, Any]:
        """The compact task's keywords: the send's and the follow step's together."""
        return {**self.send, **self.follow}


def _refuse(who: str, options: Mapping[str, Any], r: Roles, compact: bool) -> None:
    """A keyword the builder sets, that no step takes, or (compact) that only a split step takes."""
    wired = sorted(set(options) & WIRED)
    if wired:
        raise TypeError(f"{who}: {', '.join(wired)} is set by the stage itself, not passed as an option")
    unknown = sorted(set(options) - r.known)
    if unknown:
        raise TypeError(f"{who}: unknown option(s) {', '.join(map(repr, unknown))}; an option is a keyword of "
                        "AgentVaultInitiateOperator, AgentVaultTaskExistsSensor, AgentVaultStreamOperator or "
                        "Airflow's BaseOperator")
    split_only = sorted(set(options) - r.compact - r.common - RESULT_SHAPING) if compact else []
    if split_only:
        steps = ", ".join(f"{k!r} (the {'send' if k in r.send else 'wait'} step)" for k in split_only)
        raise TypeError(f"{who}: {steps} only applies to the split form, not to a compact stage")
