"""The provider's client and follower against real agents behind the fault proxy: one case per fault class.

Each case of :data:`faults.reliability.CASES` installs its faults on a fresh :class:`FaultProxy`, then the
provider sends a task through the proxy, (for delayed visibility) waits until it is visible, and follows it
to its end, with the blocking :class:`AgentClient` and with the :class:`AsyncAgentClient`, against the
reference agent (AgentVault dialect) and an a2a-sdk 1.3.0 server (JSON-RPC 1.0). Invariants:

1. a result equals the agent's own final task read directly from the server (state, artifacts, messages);
2. every wait ends within its bound (``overall_timeout`` plus a margin; ``lost_grace`` for a lost task);
3. every failure is a typed :class:`AgentVaultError` whose message names the agent URL, the task id
   (the method for a send whose answer was lost) and a cause;
4. the agent holds exactly the one task the client started (``proxy.created_task_ids``); after a send
   whose answer was lost the error is :class:`AmbiguousSendError` and says a task may exist.

No case asserts how the result was delivered (stream, resubscribe, polling) unless the fault makes it
certain, and nothing sleeps to wait for a condition: every wait is one of the client's own bounded waits.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentvault_stack.testing.fault_proxy import (
    Fault,
    FaultProxy,
    Match,
    cut_after_events,
    cut_mid_event,
    damage_json,
    inject_unknown_event,
    reset_before_request,
    stall,
    status,
    wrong_content_type,
)
from airflow_agentvault.protocol import operations
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects import codec_for
from airflow_agentvault.protocol.errors import (
    AgentVaultError,
    AmbiguousSendError,
    TaskLostError,
    redact_url,
)
from airflow_agentvault.protocol.follow import Follower, FollowOutcome
from airflow_agentvault.protocol.models import Message, Task, TextPart
from airflow_agentvault.protocol.timing import Timing

from faults import reliability
from faults.reliability import AMBIGUOUS_SEND, CASES, MODES, RESULT, TASK_LOST, Case, Methods
from faults.servers import a2a_sdk_agent, reference_agent

pytestmark = pytest.mark.integration

TIMING = Timing.parse({
    "verify_interval": 0.1,
    "sse_retry_delay": 0.05,
    "poll_interval": 0.1,
    "read_timeout": 2.0,
    "overall_timeout": 20.0,
    "lost_grace": 1.0,
})
CONNECT_TIMEOUT = 2.0
MARGIN = 5.0  # seconds past a bound that a wait may take (one request in flight, a loaded CI machine)
WORK_SECONDS = 1.0  # how long each task runs on both servers
TIMER_SLACK = 0.01  # a sleep may end this much early by the monotonic clock (timer granularity)


# -- the servers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One real agent: where it listens, how the proxy and the client speak to it, what to send it."""

    key: str
    base_url: str
    rpc_path: str
    proxy_dialect: str
    codec: str
    methods: Methods
    text: str

    def rpc_url(self, base_url: str | None = None) -> str:
        return (base_url or self.base_url) + self.rpc_path


@pytest.fixture(scope="module")
def reference() -> Iterator[Server]:
    """The reference agent, each task working ``WORK_SECONDS`` and streaming 5 token messages."""
    with reference_agent("--work-seconds", str(WORK_SECONDS), "--tokens", "5",
                         name="fault-suite-reference-agent") as base_url:
        yield Server("reference", base_url, "/a2a/", "agentvault", "agentvault",
                     Methods("tasks/send", "tasks/get", "tasks/sendSubscribe"), "hello fault suite")


@pytest.fixture(scope="module")
def a2a() -> Iterator[Server]:
    """``tests/interop/a2a_v1_agent.py`` (a2a-sdk 1.3.0), spoken to over JSON-RPC 1.0."""
    with a2a_sdk_agent(name="fault-suite-a2a-sdk-1.3.0") as base_url:
        yield Server("a2a", base_url, "/", "a2a-jsonrpc", "a2a-1.0",
                     Methods("SendMessage", "GetTask", "SubscribeToTask"),
                     f"hello fault suite sleep={WORK_SECONDS} chunks=3")


# -- one run: send, (wait until visible), follow ---------------------------------------------------------


@dataclass
class Run:
    """What one run through the proxy produced."""

    task_id: str | None = None
    outcome: FollowOutcome | None = None
    error: BaseException | None = None
    elapsed: float = 0.0
    slept: list[tuple[float, float]] = field(default_factory=list)  # each of the client's waits: (asked, took)


def _message(server: Server) -> Message:
    return Message(role="user", parts=[TextPart(content=server.text)])


def _clients_kwargs(server: Server, timing: Timing) -> dict[str, Any]:
    return {"codec": codec_for(server.codec), "connect_timeout": CONNECT_TIMEOUT, "read_timeout": timing.read_timeout}


def run_sync(server: Server, url: str, timing: Timing, wait_visible: bool) -> Run:
    run = Run()

    def sleep(seconds: float) -> None:
        began = time.monotonic()
        time.sleep(seconds)
        run.slept.append((seconds, time.monotonic() - began))

    client = AgentClient(url, **_clients_kwargs(server, timing))
    follower = Follower(client.agent, timing, clock=time.monotonic)
    started = time.monotonic()
    try:
        run.task_id = client.run(operations.send(client.agent, _message(server)), sleep=sleep)
        if wait_visible:
            client.run(follower.wait_until_visible(follower.visibility_wait(run.task_id)), sleep=sleep)
        run.outcome = client.run(follower.follow(run.task_id), sleep=sleep)
    except Exception as exc:  # noqa: BLE001 - judged by the invariants
        run.error = exc
    run.elapsed = time.monotonic() - started
    return run


async def _run_async(server: Server, url: str, timing: Timing, wait_visible: bool) -> Run:
    run = Run()

    async def sleep(seconds: float) -> None:
        began = time.monotonic()
        await asyncio.sleep(seconds)
        run.slept.append((seconds, time.monotonic() - began))

    async with AsyncAgentClient(url, **_clients_kwargs(server, timing)) as client:
        follower = Follower(client.agent, timing, clock=time.monotonic)
        started = time.monotonic()
        try:
            run.task_id = await client.run(operations.send(client.agent, _message(server)), sleep=sleep)
            if wait_visible:
                await client.run(follower.wait_until_visible(follower.visibility_wait(run.task_id)), sleep=sleep)
            run.outcome = await client.run(follower.follow(run.task_id), sleep=sleep)
        except Exception as exc:  # noqa: BLE001 - judged by the invariants
            run.error = exc
        run.elapsed = time.monotonic() - started
    return run


def run_async(server: Server, url: str, timing: Timing, wait_visible: bool) -> Run:
    return asyncio.run(_run_async(server, url, timing, wait_visible))


RUNNERS = {"sync": run_sync, "async": run_async}


# -- the invariants ------------------------------------------------------------------------------------------


def agent_truth(server: Server, task_id: str) -> Task:
    """The task as the agent itself holds it, read directly (not through the proxy)."""
    return AgentClient(server.rpc_url(), **_clients_kwargs(server, TIMING)).get(task_id)


def _wire(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "state": task.state.value,
        "artifacts": [a.to_wire() for a in task.artifacts],
        "messages": [m.to_wire() for m in task.messages],
    }


def assert_result_is_the_truth(server: Server, run: Run) -> None:
    """Invariant 1: the follow's task is the agent's own final task; nothing lost, nothing duplicated."""
    assert run.error is None, f"expected a result, got {type(run.error).__name__}: {run.error}"
    assert run.outcome is not None and run.task_id is not None
    result = run.outcome.task
    assert result.state.ends_wait, f"the follow returned a task still {result.state.value}"
    truth = agent_truth(server, run.task_id)
    assert _wire(result) == _wire(truth)
    assert len({a.id for a in result.artifacts}) == len(result.artifacts), "an artifact came twice"
    assert any(m.role != "user" for m in result.messages), "the agent's messages are missing"


def assert_within(run: Run, bound: float) -> None:
    """Invariant 2: the wait ended within its bound."""
    assert run.elapsed < bound, f"the run took {run.elapsed:.2f} s, bound {bound:g} s"


def assert_typed_failure(run: Run, url: str, error_type: type[AgentVaultError], *, names: str) -> AgentVaultError:
    """Invariant 3: a typed error whose message names the agent URL, ``names`` (task id or method) and a cause."""
    error = run.error
    assert isinstance(error, error_type), f"expected {error_type.__name__}, got {type(error).__name__}: {error}"
    text = str(error)
    assert redact_url(url) in text, text
    assert names in text, text
    assert error.detail.strip(), "the error gives no cause"
    return error


def run_case(server: Server, mode: str, case: Case) -> None:
    with FaultProxy(server.base_url, dialect=server.proxy_dialect) as proxy:
        case.install(proxy, server.methods)
        url = server.rpc_url(proxy.url)
        run = RUNNERS[mode](server, url, TIMING, case.wait_visible)
        created = proxy.created_task_ids
        applied = [seen.fault for seen in proxy.requests if seen.fault]
    assert proxy.errors == []
    assert applied, "the fault was never applied: the case proves nothing"
    assert_within(run, TIMING.overall_timeout + MARGIN)

    if case.outcome == RESULT:
        assert_result_is_the_truth(server, run)
        assert created == [run.task_id]  # invariant 4: one task, the one followed
        if case.min_sleep is not None:  # the client asked for the agent's wait, and really waited it
            asked, took = max(run.slept, default=(0.0, 0.0))
            assert asked >= case.min_sleep and took >= case.min_sleep - TIMER_SLACK, f"waits (asked, took): {run.slept}"
    elif case.outcome == AMBIGUOUS_SEND:
        error = assert_typed_failure(run, url, AmbiguousSendError, names=server.methods.send)
        assert "may" in str(error) and "task" in str(error).lower(), f"does not say a task may exist: {error}"
        assert len(created) == 1, f"the agent holds {created}"
        assert agent_truth(server, created[0]).id == created[0]  # the task the error warns about is real
    elif case.outcome == TASK_LOST:
        assert run.task_id is not None and created == [run.task_id]
        assert_typed_failure(run, url, TaskLostError, names=run.task_id)
        # from the restart: the subscription retries, then lost_grace of "Task not found" (polls included)
        assert_within(run, TIMING.lost_grace + WORK_SECONDS + MARGIN)
    else:  # pragma: no cover - a new outcome needs its checks here
        raise AssertionError(f"unknown outcome {case.outcome!r}")


def _params() -> list[Any]:
    params = []
    for case in CASES:
        for server in case.servers:
            for mode in MODES:
                marks = [pytest.mark.xfail(reason=case.xfail[server], strict=True)] if server in case.xfail else []
                params.append(pytest.param(server, mode, case, id=f"{server}-{mode}-{case.id}", marks=marks))
    return params


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("server_key", "mode", "case"), _params())
def test_fault(request: pytest.FixtureRequest, server_key: str, mode: str, case: Case) -> None:
    run_case(request.getfixturevalue(server_key), mode, case)


# -- an unknown event is skipped, not taken for a disconnect ---------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize(("server_key", "case_id"), [
    pytest.param("reference", "unknown-event-named", id="reference-unknown-event-named"),
    pytest.param("a2a", "unknown-event-named", id="a2a-unknown-event-named"),
    pytest.param("a2a", "unknown-event-data-only", id="a2a-unknown-event-data-only"),
])
def test_unknown_event_is_skipped_without_a_disconnect(request: pytest.FixtureRequest, server_key: str,
                                                       case_id: str) -> None:
    """The stream survives an unknown event: one subscription delivers the result (the rule in operations)."""
    server: Server = request.getfixturevalue(server_key)
    with FaultProxy(server.base_url, dialect=server.proxy_dialect) as proxy:
        reliability.CASES_BY_ID[case_id].install(proxy, server.methods)
        run = run_sync(server, server.rpc_url(proxy.url), TIMING, wait_visible=False)
        injected = [seen for seen in proxy.requests if seen.fault == "inject_unknown_event"]
    assert injected
    assert_result_is_the_truth(server, run)
    assert run.outcome is not None and run.outcome.sse_attempts == 1, run.outcome.metadata() if run.outcome else None


# -- random schedules of stream and transport faults (reference agent, blocking client) ------------------

#: A shorter read timeout for the random schedules: a stall costs the client this much each time.
RANDOM_TIMING = Timing.parse({**TIMING.model_dump(), "read_timeout": 1.0})


def _fault_spec() -> st.SearchStrategy[tuple]:
    """A fault as plain data (a fresh :class:`Fault` is built from it per example)."""
    target = st.sampled_from(["subscribe", "get"])
    return st.one_of(
        st.tuples(st.just("cut_after_events"), st.integers(0, 4), st.booleans()),
        st.tuples(st.just("cut_mid_event"), st.integers(0, 3)),
        st.tuples(st.just("stall"), st.integers(0, 2)),
        st.tuples(st.just("damage_json"), st.integers(1, 4)),
        st.tuples(st.just("inject_unknown_event"), st.integers(1, 4), st.sampled_from(["proxy_heartbeat", None])),
        st.tuples(st.just("wrong_content_type"), target),
        st.tuples(st.just("status_503"), target, st.integers(1, 2)),
        st.tuples(st.just("reset_before_request"), target),
    )


def _build(spec: tuple, methods: Methods) -> Fault:
    kind, *args = spec
    sub = Match(rpc_method=methods.subscribe)
    on = {"subscribe": sub, "get": Match(rpc_method=methods.get)}
    if kind == "cut_after_events":
        return cut_after_events(args[0], abrupt=args[1], when=sub)
    if kind == "cut_mid_event":
        return cut_mid_event(args[0], when=sub)
    if kind == "stall":
        return stall(RANDOM_TIMING.read_timeout + 1.0, after_events=args[0], when=sub)
    if kind == "damage_json":
        return damage_json(args[0], when=sub)
    if kind == "inject_unknown_event":
        return inject_unknown_event(args[0], name=args[1], when=sub)
    if kind == "wrong_content_type":
        return wrong_content_type("application/json", when=on[args[0]])
    if kind == "status_503":
        return status(503, times=args[1], when=on[args[0]])
    if kind == "reset_before_request":
        return reset_before_request(when=on[args[0]])
    raise AssertionError(kind)


@pytest.mark.timeout(300)
@settings(derandomize=True, max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=st.lists(_fault_spec(), min_size=0, max_size=3))
def test_random_fault_schedules(reference: Server, schedule: list[tuple]) -> None:
    with FaultProxy(reference.base_url, dialect=reference.proxy_dialect) as proxy:
        for spec in schedule:
            proxy.add(_build(spec, reference.methods))
        url = reference.rpc_url(proxy.url)
        run = run_sync(reference, url, RANDOM_TIMING, wait_visible=False)
    assert proxy.errors == []
    assert_within(run, RANDOM_TIMING.overall_timeout + MARGIN)
    if run.error is not None:  # invariant 3 for any failure; but every fault here is one to recover from
        assert_typed_failure(run, url, AgentVaultError, names=run.task_id or reference.methods.send)
    assert_result_is_the_truth(reference, run)


# -- the reliability table -------------------------------------------------------------------------------------


def test_reliability_doc_is_current() -> None:
    """docs/reliability.md is the rendering of :data:`reliability.CASES` (regenerate, never edit by hand), then
    the soak run's figures."""
    checked_in = reliability.DOC_PATH.read_text(encoding="utf-8") if reliability.DOC_PATH.exists() else ""
    assert reliability.generated_part(checked_in) == reliability.render(), (
        f"{reliability.DOC_PATH} is out of date: run `.venv/bin/python tests/faults/reliability.py`"
    )


def test_every_case_id_is_unique_and_every_row_is_tested() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    tested = {p.id for p in _params()}
    for case in CASES:
        assert set(case.test_ids()) <= tested
        assert set(case.xfail) <= set(case.servers)


def _expand(pattern: str) -> set[str]:
    """``{a,b}-x`` -> ``{"a-x", "b-x"}`` (the brace lists the table uses in its test ids)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return {pattern}
    return set().union(*(_expand(pattern[:match.start()] + choice + pattern[match.end():])
                         for choice in match.group(1).split(",")))


def test_every_other_test_a_row_quotes_exists_and_its_note_tells_its_xfails() -> None:
    """A row's second proof is a test of this module with those ids, xfail exactly where its note says so."""
    quoted = [case for case in CASES if case.also]
    assert quoted
    for case in quoted:
        name, _, ids = case.also.partition("[")
        function = globals().get(name)
        assert callable(function), f"{case.id}: no test {name} in {reliability.SUITE}"
        params = {param.id: param for mark in getattr(function, "pytestmark", []) if mark.name == "parametrize"
                  for param in mark.args[1]}
        wanted = _expand(ids.removesuffix("]")) if ids else set()
        assert wanted <= set(params), f"{case.id}: {name} has no {sorted(wanted - set(params))}"
        xfails = sorted(test_id for test_id in wanted if any(m.name == "xfail" for m in params[test_id].marks))
        assert ("xfail" in case.also_note) == bool(xfails), (
            f"{case.id}: the note {case.also_note!r} and the xfail marks {xfails} disagree")
