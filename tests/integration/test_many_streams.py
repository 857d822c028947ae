"""
One event loop follows more streams at once than httpx's connection cap of one pool (100), as a
triggerer with many deferred stages does; and a cancelled follower (a trigger moved or killed) lets go
of its stream.

The agent's tasks work far longer than the test waits; once every task has its subscriber, the test
cancels them all and each follower ends on the CANCELED status its own stream brought. Streams that
waited for a connection (a capped pool shared by the clients) would never all subscribe, and the
bounded wait fails.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from airflow_agentvault.protocol.async_client import AsyncAgentClient, AsyncTaskFollower
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.follow import PATH_STREAM
from airflow_agentvault.protocol.models import Message, TaskState, TextPart
from airflow_agentvault.protocol.timing import Timing

pytestmark = pytest.mark.integration

STREAMS = 120
WAIT_SECONDS = 90.0


def test_more_streams_than_httpx_default_cap_share_one_loop():
    with ReferenceAgentServer(AgentBehaviour(work_seconds=3600)) as server:
        agent = AgentClient(server.rpc_url)
        task_ids = [agent.send(Message(role="user", parts=[TextPart(content=f"topic {n}")])) for n in range(STREAMS)]
        store = server.app.state.agent.store
        timing = Timing(read_timeout=WAIT_SECONDS, overall_timeout=WAIT_SECONDS, sse_attempts=1)

        async def follow(task_id: str):
            async with AsyncAgentClient(server.rpc_url) as client:
                return await AsyncTaskFollower(client, timing).follow(task_id)

        async def scenario():
            following = asyncio.gather(*(follow(task_id) for task_id in task_ids))
            deadline = time.monotonic() + WAIT_SECONDS
            while sum(len(store.get(task_id).subscribers) for task_id in task_ids) < STREAMS:
                if following.done() or time.monotonic() > deadline:
                    following.cancel()
                    pytest.fail("not every task got its subscriber: the streams past a cap wait for a connection")
                await asyncio.sleep(0.05)
            async with AsyncAgentClient(server.rpc_url) as client:
                for task_id in task_ids:
                    await client.cancel(task_id)
            return await asyncio.wait_for(following, WAIT_SECONDS)

        outcomes = asyncio.run(scenario())

    assert [o.task.state for o in outcomes] == [TaskState.CANCELED] * STREAMS
    assert {o.path for o in outcomes} == {PATH_STREAM}


def test_a_cancelled_follower_closes_its_stream_at_once():
    """A trigger moved or killed is cancelled: its stream closes then, not when the collector gets to it."""
    with ReferenceAgentServer(AgentBehaviour(work_seconds=3600)) as server:
        task_id = AgentClient(server.rpc_url).send(Message(role="user", parts=[TextPart(content="topic")]))
        task = server.app.state.agent.store.get(task_id)
        timing = Timing(read_timeout=WAIT_SECONDS, overall_timeout=WAIT_SECONDS)

        async def until(condition, what: str) -> None:
            deadline = time.monotonic() + WAIT_SECONDS
            while not condition():
                if time.monotonic() > deadline:
                    pytest.fail(f"{what} within {WAIT_SECONDS} s")
                await asyncio.sleep(0.05)

        async def scenario() -> None:
            async with AsyncAgentClient(server.rpc_url) as client:
                following = asyncio.create_task(AsyncTaskFollower(client, timing).follow(task_id))
                await until(lambda: task.subscribers, "the follower did not subscribe")
                following.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await following
                await until(lambda: not task.subscribers, "the agent still streams to a cancelled follower")

        asyncio.run(scenario())
