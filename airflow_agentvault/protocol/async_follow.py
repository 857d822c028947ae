"""
Waiting for an agent task without blocking an event loop: the triggers' counterpart of :mod:`follow`.

:class:`AsyncTaskFollower` does what :class:`~airflow_agentvault.protocol.follow.TaskFollower` does, in
the same order and with the same words: one look with ``tasks/get``; if the task still runs, subscribe
with bounded, backed-off retries (tenacity's ``AsyncRetrying``); on a disconnect or when the attempts
are spent, poll; and take the final task from ``tasks/get`` in every case. Every decision and log line
comes from :class:`~airflow_agentvault.protocol.follow.FollowRules`, so the two cannot drift apart; only
the awaiting is written here.

The deadline is an absolute epoch time on the wall clock (``time.time``), so a trigger that restarts
on another triggerer keeps the original bound instead of starting a new one. Clock and sleep are
injectable so tests never wait in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryError

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentVaultClient
from airflow_agentvault.protocol.follow import (
    PATH_POLLING,
    FollowOutcome,
    FollowRules,
    _StreamState,
)
from airflow_agentvault.protocol.models import Task, TaskEvent
from airflow_agentvault.protocol.timing import Timing

log = logging.getLogger(__name__)


@dataclass
class AsyncTaskFollower(FollowRules):
    """
    Follows one task to its end with the given timing, awaiting every call.

    :param client: the async agent client.
    :param timing: the validated timing.
    :param logger: where the story goes (the trigger's log, which Airflow 3 shows in the task log).
    :param on_event: called with every streamed event, after it is logged.
    :param clock: wall clock the absolute deadline is measured on (``time.time``).
    :param sleep: how to wait between retries and polls (``asyncio.sleep``).
    """

    client: AsyncAgentVaultClient
    timing: Timing
    logger: Any = field(default_factory=lambda: log)
    on_event: Callable[[TaskEvent], None] | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    # -- existence -----------------------------------------------------------------------------

    async def check_exists(self, task_id: str) -> Task | None:
        """One existence check: the task, or None if not (yet) visible; other errors propagate."""
        try:
            return await self.client.get(task_id)
        except errors.TaskNotFoundError:
            return None

    # -- following ----------------------------------------------------------------------------

    async def follow(self, task_id: str, *, deadline: float | None = None, seen: Task | None = None) -> FollowOutcome:
        """Stream the task to its end (falling back to polling) and return the final task.

        ``seen``: the task as the caller has just read it, which replaces the first look.
        """
        started = self.clock()
        deadline = self._deadline(started, deadline)
        state = _StreamState()

        current = seen if seen is not None else await self._peek(task_id)
        finished = self._already_finished(task_id, current, started)
        if finished is not None:
            return finished

        path = await self._stream(task_id, deadline, state)
        if path is None:
            task = await self._poll(task_id, deadline)
            path = PATH_POLLING
        else:
            task = await self._final_task(task_id, deadline)
        return self._finished(task_id, task, path, started, state)

    async def _peek(self, task_id: str) -> Task | None:
        try:
            return await self.client.get(task_id)
        except errors.AgentVaultError as exc:
            self._peek_failed(task_id, exc)
            return None

    async def _stream(self, task_id: str, deadline: float, state: _StreamState) -> str | None:
        """Try the subscription with bounded retries; the path on success, None to fall back to polling."""

        async def attempt() -> None:
            read_timeout = self._begin_attempt(task_id, deadline, state)
            async with contextlib.aclosing(self.client.subscribe(task_id, read_timeout=read_timeout)) as events:
                async for event in events:
                    self._record_event(task_id, event, state)

        try:
            await AsyncRetrying(sleep=self.sleep, **self._subscribe_retry_policy(deadline))(attempt)
        except errors.AgentVaultError as exc:
            self._subscription_given_up(exc, state)
            return None
        return self._stream_path(state)

    async def _poll(self, task_id: str, deadline: float) -> Task:
        """Poll tasks/get until the task ends the wait, or the overall deadline passes."""
        polls = 0

        async def poll() -> Task | None:
            nonlocal polls
            polls += 1
            try:
                task = await self.client.get(task_id)
            except errors.AgentVaultError as exc:
                self._poll_failed(polls, task_id, exc)
                return None
            return self._polled(polls, task_id, task)

        try:
            return await AsyncRetrying(sleep=self.sleep, **self._poll_retry_policy(deadline))(poll)
        except RetryError:
            raise self._poll_timed_out(task_id, polls, self.client.rpc_url) from None

    async def _final_task(self, task_id: str, deadline: float) -> Task:
        """The stream said the task ended: read the authoritative task (poll if it lags the stream)."""
        task = await self.client.get(task_id)
        if self._final_lags(task):
            return await self._poll(task_id, deadline)
        return task
