"""The Airflow operators and triggers against real agents behind the fault proxy: one case per fault class.

:mod:`faults.test_fault_suite` proves the protocol core's blocking and asyncio clients against each fault
class. The provider's operators and triggers run exactly those routines; this module proves it at the
Airflow level, for a representative subset of the fault classes (most rows come from
:data:`faults.reliability.CASES`), on the reference agent (AgentVault dialect) and an a2a-sdk 1.3.0 server
(JSON-RPC 1.0), in both forms of a stage and both modes:

* ``compact-sync``: ``AgentVaultStageOperator(...).execute(context)`` on the worker;
* ``compact-deferred``: the same operator deferrable: its ``TaskDeferred`` trigger is run inside asyncio
  and the event goes to its ``execute_complete`` (or, if the task ended before the operator deferred, the
  operator's own result: the path is not asserted);
* ``compact-worker-free`` (Airflow 3.3+, a subset of the cases): the operator's start arguments as the
  scheduler would use them: its ``AgentVaultStageTrigger`` run inside asyncio over a record in the test's
  task state store; a ``TaskSuccessEvent`` is the result (from the record's XCom), any other event goes
  to the operator's ``resume_from_triggerer`` as on a worker;
* ``split-sync``: ``AgentVaultInitiateOperator`` -> ``AgentVaultTaskExistsSensor`` -> ``AgentVaultStreamOperator``;
* ``split-deferred``: initiate -> sensor -> ``AgentVaultStreamTrigger(...).run()`` consumed to its single
  event (bounded by ``asyncio.wait_for``) -> ``AgentVaultStreamOperator(...).execute_complete``.

Each operator reads its connection from an ``AIRFLOW_CONN_*`` variable pointing at the proxy. The
invariants are the fault suite's: the delivered result equals the agent's own final task read directly
from the server (state and artifacts strictly, ``text`` against ``answer_text()``, the agent's messages as
the result keeps them); every wait ends within its bound; every failure is a typed error naming the agent
URL and the task id (the method for a send whose answer was lost); the agent holds exactly one task per
started stage (``proxy.created_task_ids``). Nothing sleeps to wait for a condition.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from agentvault_stack.testing.fault_proxy import FaultProxy, Match, status
from airflow_agentvault.compat import WORKER_FREE_STAGES, TaskDeferred
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator
from airflow_agentvault.operators.remote_task import TASK_ID_KEY, UNSURE_KEY
from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.operators.stage_timing import StageTiming
from airflow_agentvault.protocol.errors import AmbiguousSendError, TaskLostError
from airflow_agentvault.protocol.result import agent_messages
from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor
from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger
from airflow_agentvault.triggers.stage import AgentVaultStageTrigger

from faults.reliability import AMBIGUOUS_SEND, CASES_BY_ID, RESULT, TASK_LOST, Methods
from faults.test_fault_suite import (  # noqa: F401  (reference, a2a: module-scoped server fixtures)
    MARGIN,
    TIMER_SLACK,
    WORK_SECONDS,
    Server,
    a2a,
    agent_truth,
    assert_typed_failure,
    assert_within,
    reference,
)
from unit.fakes import FakeTaskStateStore, FakeTriggerRecord, make_context

pytestmark = pytest.mark.integration

#: Short timings (the operators' ``timing`` argument, as a DAG would give it).
TIMING: dict[str, float] = {
    "verify_interval": 0.05,
    "sse_retry_delay": 0.05,
    "poll_interval": 0.1,
    "read_timeout": 2.0,
    "overall_timeout": 20.0,
    "lost_grace": 1.0,
}
CONN_ID = "agentvault_faults"
#: Seconds the 503 gateway asks the client to wait (``Retry-After``) on a read of the task.
RETRY_AFTER = 1.0
FORMS = ("compact-sync", "compact-deferred", "split-sync", "split-deferred")
#: The cases the worker-free form runs too: a cut stream, a lost send, a forgetful restart, Retry-After.
WORKER_FREE_CASES = ("cut-after-2-abrupt", "reset-after-send", "restart-forgets-tasks", "503-retry-after-get")


# -- the cases -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpCase:
    """A fault class at the operator level: how it is installed and how the stage must end."""

    id: str
    install: Callable[[FaultProxy, Methods], None]
    outcome: str = RESULT
    #: The client must honour the agent's ``Retry-After`` this many seconds in all (a lower bound).
    min_wait: float | None = None


def _from_table(case_id: str) -> OpCase:
    row = CASES_BY_ID[case_id]
    return OpCase(row.id, row.install, row.outcome)


CASES: tuple[OpCase, ...] = (
    _from_table("cut-after-2-abrupt"),
    _from_table("damaged-json"),
    _from_table("unknown-event-named"),
    _from_table("wrong-content-type"),
    OpCase(
        "503-retry-after-get",
        lambda proxy, m: proxy.add(status(503, retry_after=RETRY_AFTER, times=2, when=Match(rpc_method=m.get))),
        min_wait=2 * RETRY_AFTER,
    ),
    _from_table("restart-forgets-tasks"),
    _from_table("reset-after-send"),
)


# -- the connection ---------------------------------------------------------------------------------------


def connect(monkeypatch: pytest.MonkeyPatch, server: Server, proxy: FaultProxy) -> str:
    """Point ``CONN_ID`` at the server's JSON-RPC endpoint through the proxy; return that URL.

    The a2a-sdk server's endpoint is its base URL, for which the hook reads the agent card, and the card
    names the server's own address: the traffic would bypass the proxy. The proxy therefore plays a
    gateway that exposes only the endpoint (every GET answered 404), and the hook uses the URL as given.
    """
    url = server.rpc_url(proxy.url)
    extra: dict[str, Any] = {}
    if server.codec != "agentvault":
        extra["dialect"] = server.codec
        proxy.add(status(404, times=None, when=Match(http_method="GET")))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}",
                       json.dumps({"conn_type": "agentvault", "host": url, "extra": extra}))
    return url


# -- one stage in each form and mode ------------------------------------------------------------------------


@dataclass
class StageRun:
    """What one stage produced: the remote task id, the result or the error, and how long it took."""

    task_id: str | None = None
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    elapsed: float = 0.0
    deferred: bool | None = None  # informational only: whether the operator deferred
    store: FakeTaskStateStore | None = None  # the task state store of the operator that sent


def _context(store: FakeTaskStateStore | None = None) -> dict[str, Any]:
    context = make_context(store)
    context["ti"].run_id = f"manual__{uuid.uuid4().hex}"  # each stage its own run, as in Airflow
    context["ti"].get_first_reschedule_date.return_value = None  # a poke-mode sensor asks
    return context


def _run_trigger(trigger: AgentVaultStreamTrigger) -> dict[str, Any]:
    """The trigger's events, consumed inside asyncio within a bound; exactly one is expected."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(collect(), TIMING["overall_timeout"] + MARGIN))
    assert len(events) == 1, events
    return events[0]


def _stage(server: Server, **kwargs: Any) -> AgentVaultStageOperator:
    return AgentVaultStageOperator(task_id="stage", agentvault_conn_id=CONN_ID, text=server.text, timing=TIMING,
                                   **kwargs)


def compact_sync(server: Server, run: StageRun) -> None:
    run.result = _stage(server, deferrable=False).execute(_context(run.store))


def compact_deferred(server: Server, run: StageRun) -> None:
    op = _stage(server, deferrable=True)
    context = _context(run.store)
    try:
        run.result = op.execute(context)  # the task ended before the operator deferred
        run.deferred = False
    except TaskDeferred as deferral:
        run.deferred = True
        assert isinstance(deferral.trigger, AgentVaultStreamTrigger) and deferral.method_name == "execute_complete"
        run.result = op.execute_complete(context, _run_trigger(deferral.trigger))


def compact_worker_free(server: Server, run: StageRun) -> None:
    op = _stage(server, worker_free=True)
    assert op.start_from_trigger, op.worker_free_reason
    trigger = AgentVaultStageTrigger(**op.start_trigger_args.trigger_kwargs)
    context = _context(run.store)
    ti = context["ti"]
    trigger.task_instance = SimpleNamespace(dag_id=ti.dag_id, run_id=ti.run_id, task_id="stage", map_index=-1,
                                            try_number=1)
    trigger._record = record = FakeTriggerRecord(run.store)

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    [event] = asyncio.run(asyncio.wait_for(collect(), TIMING["overall_timeout"] + MARGIN))
    run.deferred = True
    if type(event).__name__ == "TaskSuccessEvent":  # ended in the triggerer: the result is in XCom
        run.result = record.values["return_value"]
    else:  # resumed on a worker
        run.result = op.resume_from_triggerer(context, event.payload)


def _initiate_and_wait(server: Server, run: StageRun) -> str:
    task_id = AgentVaultInitiateOperator(task_id="initiate", agentvault_conn_id=CONN_ID, text=server.text
                                         ).execute(_context(run.store))
    run.task_id = task_id
    state = AgentVaultTaskExistsSensor(task_id="exists", agent_task_id=task_id, agentvault_conn_id=CONN_ID,
                                       timing=TIMING, deferrable=False, mode="poke").execute(_context())
    assert isinstance(state, str) and state, state
    return task_id


def _stream(task_id: str, **kwargs: Any) -> AgentVaultStreamOperator:
    return AgentVaultStreamOperator(task_id="stream", agent_task_id=task_id, agentvault_conn_id=CONN_ID,
                                    timing=TIMING, **kwargs)


def split_sync(server: Server, run: StageRun) -> None:
    task_id = _initiate_and_wait(server, run)
    run.result = _stream(task_id, deferrable=False).execute(_context())


def split_deferred(server: Server, run: StageRun) -> None:
    task_id = _initiate_and_wait(server, run)
    run.deferred = True
    event = _run_trigger(AgentVaultStreamTrigger(conn_id=CONN_ID, agent_task_id=task_id,
                                                 **StageTiming.begin(TIMING).trigger_kwargs()))
    run.result = _stream(task_id, deferrable=True).execute_complete(_context(), event)


RUNNERS: dict[str, Callable[[Server, StageRun], None]] = {
    "compact-sync": compact_sync,
    "compact-deferred": compact_deferred,
    "compact-worker-free": compact_worker_free,
    "split-sync": split_sync,
    "split-deferred": split_deferred,
}


def run_stage(server: Server, form: str) -> StageRun:
    run = StageRun(store=FakeTaskStateStore())
    started = time.monotonic()
    try:
        RUNNERS[form](server, run)
    except Exception as exc:  # noqa: BLE001 - judged by the invariants
        run.error = exc
    run.elapsed = time.monotonic() - started
    if run.task_id is None and run.store is not None:
        run.task_id = run.store.get(TASK_ID_KEY)
    return run


# -- the invariants ------------------------------------------------------------------------------------------


def assert_result_is_the_truth(server: Server, url: str, run: StageRun) -> None:
    """The delivered result is the agent's own final task: nothing lost, nothing duplicated."""
    assert run.error is None, f"expected a result, got {type(run.error).__name__}: {run.error}"
    assert run.result is not None and run.task_id is not None
    result = run.result
    truth = agent_truth(server, run.task_id)
    assert truth.state.value == "COMPLETED"
    assert result["task_id"] == truth.id == run.task_id
    assert result["state"] == truth.state.value
    assert result["artifacts"] == [a.to_wire() for a in truth.artifacts]
    assert len({a["id"] for a in result["artifacts"]}) == len(result["artifacts"]), "an artifact came twice"
    assert result["text"] == (truth.answer_text() or "") and result["text"], result["text"]
    assert result["messages"] == agent_messages(truth)
    assert result["messages"] and all(m["role"] != "user" for m in result["messages"])
    assert result["metadata"]["agent_url"] == url


def check(server: Server, case: OpCase, form: str, monkeypatch: pytest.MonkeyPatch) -> StageRun:
    with FaultProxy(server.base_url, dialect=server.proxy_dialect) as proxy:
        url = connect(monkeypatch, server, proxy)
        case.install(proxy, server.methods)
        run = run_stage(server, form)
        created = proxy.created_task_ids
        applied = [seen for seen in proxy.requests if seen.fault and seen.rpc_method]  # not the card 404s
    assert proxy.errors == []
    assert applied, "the fault was never applied: the case proves nothing"
    assert_within(run, TIMING["overall_timeout"] + MARGIN)

    if case.outcome == RESULT:
        assert_result_is_the_truth(server, url, run)
        assert created == [run.task_id]  # one task, the one delivered
        if case.min_wait is not None:  # the agent's Retry-After was honoured, every time
            assert len(applied) * RETRY_AFTER >= case.min_wait
            honoured = run.elapsed >= case.min_wait - TIMER_SLACK
            assert honoured, f"took {run.elapsed:.2f} s, the agent asked for {case.min_wait:g} s; {applied}"
    elif case.outcome == AMBIGUOUS_SEND and server.codec == "a2a-1.0":
        # A2A 1.0 lists a conversation's tasks: the stage finds the task its lost send started and follows it
        assert_result_is_the_truth(server, url, run)
        assert created == [run.task_id]  # adopted, not sent twice
    elif case.outcome == AMBIGUOUS_SEND:
        error = assert_typed_failure(run, url, AmbiguousSendError, names=server.methods.send)
        assert "may" in str(error) and "task" in str(error).lower(), f"does not say a task may exist: {error}"
        assert run.result is None and run.store is not None and run.store.get(UNSURE_KEY) is True
        assert run.store.get(TASK_ID_KEY) is None
        assert len(created) == 1, f"the agent holds {created}"
        assert agent_truth(server, created[0]).id == created[0]  # the task the error warns about is real
    elif case.outcome == TASK_LOST:
        assert run.task_id is not None and created == [run.task_id]
        assert_typed_failure(run, url, TaskLostError, names=run.task_id)
        # the subscription that met the restart, then lost_grace of "Task not found" (polls included)
        assert_within(run, TIMING["lost_grace"] + WORK_SECONDS + MARGIN)
    else:  # pragma: no cover - a new outcome needs its checks here
        raise AssertionError(f"unknown outcome {case.outcome!r}")
    return run


def _params() -> list[Any]:
    forms = {case.id: FORMS + (("compact-worker-free",) if WORKER_FREE_STAGES and case.id in WORKER_FREE_CASES
                                else ()) for case in CASES}
    return [
        pytest.param(server, form, case, id=f"{server}-{form}-{case.id}")
        for case in CASES
        for server in ("reference", "a2a")
        for form in forms[case.id]
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("server_key", "form", "case"), _params())
def test_operator_fault(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, server_key: str,
                        form: str, case: OpCase) -> None:
    check(request.getfixturevalue(server_key), case, form, monkeypatch)


def test_cases_cover_the_brief() -> None:
    """The subset named for the operator level is all here, and each row of the table it reuses exists."""
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert {"cut-after-2-abrupt", "damaged-json", "unknown-event-named", "wrong-content-type",
            "503-retry-after-get", "restart-forgets-tasks", "reset-after-send"} <= set(ids)
    assert {case.outcome for case in CASES} == {RESULT, AMBIGUOUS_SEND, TASK_LOST}
    assert set(WORKER_FREE_CASES) <= set(ids)
