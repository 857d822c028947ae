"""The reliability table: each fault the suite injects, what the provider does, what the user sees.

One source for two readers: :mod:`faults.test_fault_suite` parametrizes its cases from :data:`CASES`
(each row carries the function that installs its faults on a :class:`~agentvault_stack.testing.fault_proxy.FaultProxy`), and
:func:`render` turns the same rows into ``docs/reliability.md``. Regenerate the page with::

    .venv/bin/python tests/faults/reliability.py

``test_fault_suite.test_reliability_doc_is_current`` fails when the checked-in page differs from the
rendering (it only reads the file).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make ``faults`` importable
    sys.path.insert(0, str(_TESTS))

from agentvault_stack.testing.fault_proxy import (  # noqa: E402
    FaultProxy,
    Match,
    cut_after_events,
    cut_mid_event,
    damage_json,
    delay_visibility,
    forget_tasks,
    inject_unknown_event,
    reset_after_request,
    reset_before_request,
    stall,
    status,
    status_after_upstream,
    wrong_content_type,
)

DOC_PATH = _TESTS.parent / "docs" / "reliability.md"
SUITE = "tests/faults/test_fault_suite.py"

#: The servers and modes every case runs against (the ``{server}-{mode}-`` prefix of a test id).
SERVERS = ("reference", "a2a")
MODES = ("sync", "async")

#: How a case must end.
RESULT = "result"  # the follow returns the agent's own final task
AMBIGUOUS_SEND = "ambiguous-send"  # AmbiguousSendError; the agent holds exactly one task
TASK_LOST = "task-lost"  # TaskLostError naming the task, within lost_grace

#: Seconds the 429 case's agent asks the client to wait (``Retry-After``).
RETRY_AFTER = 1.0
#: How long a stall lasts: longer than the suite's read_timeout (2 s), so the client must give up on it.
STALL_SECONDS = 3.0
#: A well-formed JSON-RPC stream event whose result is of a kind no A2A version defines.
UNKNOWN_A2A_RESULT = '{"jsonrpc":"2.0","id":1,"result":{"proxyHeartbeat":{"seq":1}}}'


@dataclass(frozen=True)
class Methods:
    """A dialect's names for the calls a fault targets (the JSON-RPC method the proxy matches)."""

    send: str
    get: str
    subscribe: str


@dataclass(frozen=True)
class Case:
    """One row: a fault, the provider's answer to it, and the function that installs it on a proxy."""

    id: str
    fault: str
    provider: str
    user_sees: str
    install: Callable[[FaultProxy, Methods], None]
    outcome: str = RESULT
    servers: tuple[str, ...] = SERVERS
    #: The case waits for the task to become visible (``wait_until_visible``) before following it.
    wait_visible: bool = False
    #: The client must have slept at least this long once (a lower bound the agent asked for).
    min_sleep: float | None = None
    #: ``server -> reason`` for a combination that cannot be produced (marked xfail, never hidden).
    xfail: Mapping[str, str] = field(default_factory=dict)
    #: Another test that proves this row (in the suite), and a note on it, quoted in the table.
    also: str = ""
    also_note: str = ""

    def test_ids(self) -> list[str]:
        return [f"{server}-{mode}-{self.id}" for server in self.servers for mode in MODES]


def _on(method: str) -> Match:
    return Match(rpc_method=method)


CASES: tuple[Case, ...] = (
    Case(
        "cut-after-2-clean",
        "The event stream ends cleanly (terminating chunk) after 2 events, before a final state",
        "Treats the end as a disconnect, never a success; resubscribes after `sse_retry_delay`",
        "The complete result",
        lambda proxy, m: proxy.add(cut_after_events(2, when=_on(m.subscribe))),
    ),
    Case(
        "cut-after-2-abrupt",
        "The event stream is cut by a TCP reset after 2 events",
        "Resubscribes; the result is read with `tasks/get`, so nothing streamed twice is counted twice",
        "The complete result",
        lambda proxy, m: proxy.add(cut_after_events(2, abrupt=True, when=_on(m.subscribe))),
    ),
    Case(
        "cut-mid-event",
        "The connection is reset half way through the 2nd event",
        "The half event is discarded, not parsed; resubscribes",
        "The complete result",
        lambda proxy, m: proxy.add(cut_mid_event(1, when=_on(m.subscribe))),
    ),
    Case(
        "stall",
        f"The stream goes silent after 1 event for {STALL_SECONDS:g} s, longer than `read_timeout`",
        "Gives up on the stream after `read_timeout` of silence; resubscribes or reads the task",
        "The complete result",
        lambda proxy, m: proxy.add(stall(STALL_SECONDS, after_events=1, when=_on(m.subscribe))),
    ),
    Case(
        "damaged-json",
        "The 2nd event's data is not valid JSON (the SSE framing stays valid)",
        "Ends the stream as a disconnect quoting the damage; resubscribes",
        "The complete result",
        lambda proxy, m: proxy.add(damage_json(2, when=_on(m.subscribe))),
    ),
    Case(
        "unknown-event-named",
        "An event of an unknown type (`event: proxy_heartbeat`) arrives before the 1st",
        "Skips it and says so in the log; keeps streaming on the same subscription (every dialect: A2A "
        "streams name no events, so a named one is not theirs)",
        "The complete result",
        lambda proxy, m: proxy.add(inject_unknown_event(1, name="proxy_heartbeat", when=_on(m.subscribe))),
        also="test_unknown_event_is_skipped_without_a_disconnect[{reference,a2a}-unknown-event-named]",
    ),
    Case(
        "unknown-event-data-only",
        "A data-only event whose JSON-RPC result is of an unknown kind arrives before the 2nd",
        "Skips it (A2A events carry no names, so the result's shape decides) and says so; keeps streaming",
        "The complete result",
        lambda proxy, m: proxy.add(inject_unknown_event(2, name=None, data=UNKNOWN_A2A_RESULT, when=_on(m.subscribe))),
        servers=("a2a",),
        also="test_unknown_event_is_skipped_without_a_disconnect[a2a-unknown-event-data-only]",
    ),
    Case(
        "wrong-content-type",
        "The stream's answer says `Content-Type: application/json`",
        "Treats the answer as no stream (a disconnect naming what came back); resubscribes, then polls",
        "The complete result",
        lambda proxy, m: proxy.add(wrong_content_type("application/json", when=_on(m.subscribe))),
    ),
    Case(
        "503-burst-subscribe",
        "Two subscriptions in a row are answered 503 by a gateway",
        "Retries the subscription with backed-off delays, within `sse_attempts`",
        "The complete result",
        lambda proxy, m: proxy.add(status(503, times=2, when=_on(m.subscribe))),
    ),
    Case(
        "503-burst-get",
        "Two reads of the task in a row are answered 503 by a gateway",
        "A failed read is retried (a read is idempotent); the result always comes from a successful read",
        "The complete result",
        lambda proxy, m: proxy.add(status(503, times=2, when=_on(m.get))),
    ),
    Case(
        "429-retry-after",
        f"A subscription is answered 429 with `Retry-After: {RETRY_AFTER:g}`",
        "Waits at least what the agent asked (never past the overall deadline) before the next try",
        "The complete result, after the wait the agent asked for",
        lambda proxy, m: proxy.add(status(429, retry_after=RETRY_AFTER, when=_on(m.subscribe))),
        min_sleep=RETRY_AFTER,
    ),
    Case(
        "reset-before-get",
        "The connection is reset after a read of the task was sent, before the agent saw it",
        "Retries the read (it is idempotent)",
        "The complete result",
        lambda proxy, m: proxy.add(reset_before_request(times=2, when=_on(m.get))),
    ),
    Case(
        "reset-after-send",
        "The agent starts the task, then the connection is reset before its answer arrives",
        "Does not resend (a blind resend could run the task twice); raises `AmbiguousSendError`",
        "A failed attempt saying a task may exist on the agent (check before re-running)",
        lambda proxy, m: proxy.add(reset_after_request(when=_on(m.send))),
        outcome=AMBIGUOUS_SEND,
    ),
    Case(
        "502-after-send",
        "The agent starts the task, then a gateway replaces its answer with a 502",
        "Does not resend; raises `AmbiguousSendError`",
        "A failed attempt saying a task may exist on the agent",
        lambda proxy, m: proxy.add(status_after_upstream(502, when=_on(m.send))),
        outcome=AMBIGUOUS_SEND,
    ),
    Case(
        "restart-forgets-tasks",
        "The agent restarts while the task is followed and answers \"Task not found\" from then on",
        "Keeps reading the task for `lost_grace`, then raises `TaskLostError`",
        "A failed attempt naming the lost task, within `lost_grace` of the restart",
        lambda proxy, m: proxy.add(forget_tasks(when=_on(m.subscribe))),
        outcome=TASK_LOST,
    ),
    Case(
        "delayed-visibility",
        "A new task answers \"Task not found\" to its first 3 reads",
        "`wait_until_visible` checks with growing intervals (bounded by `verify_attempts`), then follows",
        "The complete result",
        lambda proxy, m: proxy.add(delay_visibility(count=3)),
        wait_visible=True,
    ),
)

CASES_BY_ID = {case.id: case for case in CASES}

INTRO = (
    "Each fault below is injected on the wire by a loopback proxy (`stack/agentvault_stack/testing/fault_proxy.py`) between the "
    "provider's client and a real agent (the reference agent, and an a2a-sdk 1.3.0 server over JSON-RPC 1.0), "
    "with the blocking and the asyncio client. In every case the result equals the agent's own final task "
    "(read directly), every wait ends within its bound, every failure is a typed error naming the agent URL, "
    "the task and a cause, and no task is started twice. A property-based test "
    "(`test_random_fault_schedules`) also runs random schedules of up to 3 stream and transport faults."
)


#: Faults of the Airflow deployment itself, run on a CeleryExecutor stack (fault, outcome, test).
ENGINE_FAULTS = (
    ("A Celery worker is killed while a synchronous stage streams",
     "Airflow retries the try on the other worker; the retry reconnects to the one remote task: exact result",
     "test_a_worker_dying_mid_stream_is_retried_and_reconnects_to_the_same_remote_task"),
    ("The triggerer holding a deferred stage is killed",
     "The other triggerer takes the trigger over and resumes from `tasks/get`: exact result, nothing lost or "
     "counted twice, no retry",
     "test_a_triggerer_dying_hands_the_deferred_stream_to_the_other"),
    ("The scheduler is killed and restarted mid-run", "The stage never notices: exact result",
     "test_a_scheduler_restart_mid_run_leaves_the_stage_running"),
    ("Postgres is stopped and started mid-run",
     "Components retry their database work; one that exits on a failed query is restarted (as "
     "`restart: always` does in compose): exact result, one remote task",
     "test_postgres_refusing_connections_for_a_moment_does_not_fail_the_run"),
)
ENGINE_SUITE = "tests/e2e/test_distributed_stack.py"

#: The reference agent's process killed (SIGKILL) mid-stream and started again on its port (fault, outcome, test).
RESTART_FAULTS = (
    ("The agent is killed mid-stream and restarted; it keeps its tasks (`--task-store`) and runs the cut-off "
     "work again from its start",
     "The stage resubscribes or polls until the agent answers again, then follows the task to its end: exact "
     "result, one remote task (blocking operator, deferred trigger, worker-free stage)",
     "test_an_agent_that_keeps_its_tasks_finishes_the_task_after_a_restart[{compact-sync,compact-deferred,"
     "compact-worker-free}]"),
    ("The agent is killed mid-stream and restarted without its tasks (in memory)",
     "`TaskLostError` naming the agent and the task, within `lost_grace` of the agent answering again",
     "test_an_agent_that_forgets_its_tasks_ends_the_stage_as_lost[{compact-sync,compact-deferred}]"),
)
RESTART_SUITE = "tests/faults/test_agent_restart.py"

#: Answers and streams that never end, from a misbehaving agent on loopback, both runners (fault, outcome, test).
LIMIT_FAULTS = (
    ("The stream trickles a byte every 20 ms and never completes an event",
     "`WaitTimeoutError` at the overall deadline (checked after every read, events or not)",
     "test_a_stream_that_never_ends_ends_at_the_deadline[trickle-{sync,async}]"),
    ("The stream sends events forever without a final state",
     "`WaitTimeoutError` at the overall deadline", "test_a_stream_that_never_ends_ends_at_the_deadline[endless-{sync,async}]"),
    ("One stream event never ends (or is larger than the connection's `max_event_bytes`, 8 MiB by default)",
     "The stream is dropped once the event passes the limit and the task is read with `tasks/get` (no second "
     "subscription): the complete result; memory stays bounded",
     "test_an_event_that_never_ends_drops_the_stream_and_the_task_is_read[{sync,async}]"),
    ("An answer never ends (or is larger than the connection's `max_answer_bytes`, 64 MiB by default)",
     "`AnswerTooLargeError` naming the agent and the task, once the body passes the limit; a body still "
     "arriving after the call's read timeout is a timeout",
     "test_an_answer_that_never_ends_is_answer_too_large[{sync,async}]"),
)
LIMIT_SUITE = "tests/faults/test_limits.py"
#: A wait by push notification (connection extra or stage argument ``push``), against a2a-sdk 1.3.0 calling
#: back over loopback (fault, what the provider does, outcome, test).
PUSH_INTRO = (
    "With `push` set to `on` (or `auto` and an agent card offering `pushNotifications`), a deferred stage "
    "registers a push config for its task with a per-task path and a random token, naming its triggerer's "
    "receiver, and then holds no connection to the agent: it reads the task with `tasks/get` right after the "
    "registration, on each verified notification, and every `push_safety_poll` seconds (default 60) in case "
    "one is lost. A notification is only a wake-up call: its body is never trusted, and the result always "
    "comes from `tasks/get`. The receiver answers anything but a POST to a waiting task's path with its token "
    "(compared in constant time) without acting on it, keeps one flag per waiting task (not a queue) and "
    "reads at most 1 MiB of a body. A trigger that moves to another triggerer registers again with that "
    "triggerer's receiver and reads the task first. An agent that refuses the registration is streamed instead. "
    "Under a real scheduler and triggerer, `tests/e2e/test_push_stage.py` shows a deferred and a worker-free stage "
    "woken by the agent's own call, ending with its exact result."
)
PUSH_FAULTS = (
    ("The agent's notifications arrive normally", "Wakes on the first notification after the registration; "
     "reads the task", "The exact result, long before the safety poll", "test_a_stage_resumes_on_the_agents_notification"),
    ("Every notification arrives twice", "The second ring of a flag already rung changes nothing",
     "The exact result, delivered once", "test_duplicate_notifications_deliver_once"),
    ("The final notification is lost, or the agent never calls back", "The safety poll reads the task",
     "The exact result, at most one safety interval late", "test_a_lost_notification_costs_one_safety_poll"),
    ("The agent never calls back and the task runs past the overall timeout", "Stops at the deadline",
     "`WaitTimeoutError` naming agent, task and the reads made",
     "test_an_agent_that_never_calls_back_ends_in_a_timeout_within_the_bound"),
    ("A notification with a wrong or missing token, one for an unknown task, a GET", "Answers 401 / 404 "
     "without acting", "The exact result; the wait is not woken", "test_forged_and_unknown_notifications_change_nothing"),
    ("The task ends before the registration is acknowledged", "Reads the task first, before waiting",
     "The exact result at once", "test_a_task_that_ended_before_the_registration_is_read_at_once"),
    ("The receiver is stopped mid-wait (the agent's calls find nobody)", "The safety poll reads the task",
     "The exact result, at most one safety interval late", "test_a_receiver_restarted_mid_wait_costs_one_safety_poll"),
)
PUSH_SUITE = "tests/interop/test_push_waits.py"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The Markdown page: a title, the intro and the table (generated: edit this module, not the page)."""
    lines = [
        "# Reliability under network and agent faults",
        "",
        "<!-- Generated by tests/faults/reliability.py; do not edit by hand. -->",
        "",
        INTRO,
        "",
        "| Fault | What the provider does | What the user sees | Test that proves it |",
        "| --- | --- | --- | --- |",
    ]
    for case in CASES:
        servers = case.servers[0] if len(case.servers) == 1 else "{" + ",".join(case.servers) + "}"
        proof = f"`{SUITE}::test_fault[{servers}-{{{','.join(MODES)}}}-{case.id}]`"
        if case.also:
            proof += f", `{case.also}`" + (f" ({case.also_note})" if case.also_note else "")
        if case.xfail:
            proof += " (xfail: " + "; ".join(f"{s}: {r}" for s, r in sorted(case.xfail.items())) + ")"
        lines.append(f"| {_cell(case.fault)} | {_cell(case.provider)} | {_cell(case.user_sees)} | {_cell(proof)} |")
    lines += [
        "",
        "## Faults of the Airflow deployment",
        "",
        "Run on a real CeleryExecutor deployment (Postgres, Redis, two workers, two triggerers; "
        "[scale-out.md](scale-out.md) says what Airflow and the provider do in each):",
        "",
        "| Fault | What the user sees | Test that proves it |",
        "| --- | --- | --- |",
    ]
    for fault, outcome, test in ENGINE_FAULTS:
        lines.append(f"| {_cell(fault)} | {_cell(outcome)} | `{ENGINE_SUITE}::{test}` |")
    for title, intro, rows, suite in (
        ("Agent restarts", "The reference agent's process is killed (SIGKILL) while a stage streams its task, "
         "and started again on the same port:", RESTART_FAULTS, RESTART_SUITE),
        ("Answers and streams that never end", "A misbehaving agent on loopback (`tests/faults/misbehaving.py`), "
         "the blocking and the asyncio client:", LIMIT_FAULTS, LIMIT_SUITE),
    ):
        lines += ["", f"## {title}", "", intro, "", "| Fault | What the user sees | Test that proves it |",
                  "| --- | --- | --- |"]
        lines += [f"| {_cell(fault)} | {_cell(outcome)} | `{suite}::{test}` |" for fault, outcome, test in rows]
    lines += ["", "## Waiting by push notification", "", PUSH_INTRO, "",
              "| Fault | What the provider does | What the user sees | Test that proves it |",
              "| --- | --- | --- | --- |"]
    for fault, provider, outcome, test in PUSH_FAULTS:
        lines.append(f"| {_cell(fault)} | {_cell(provider)} | {_cell(outcome)} | `{PUSH_SUITE}::{test}` |")
    return "\n".join(lines) + "\n"


#: The page's hand-written part starts here (the soak run's figures, under the command that produced them).
HAND_WRITTEN = "\n## Soak run\n"


def generated_part(page: str) -> str:
    """What :func:`render` writes of ``page``: everything before its hand-written part."""
    return page.split(HAND_WRITTEN, 1)[0]


def main() -> None:
    page = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    kept = page[len(generated_part(page)):]
    DOC_PATH.write_text(render() + kept, encoding="utf-8")
    print(f"wrote {DOC_PATH}")


if __name__ == "__main__":
    main()
