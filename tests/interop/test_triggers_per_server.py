"""The trigger classes themselves (not only the async follower they use) against every server of the matrix.

What the triggerer runs: the exists trigger sees the task, the stream trigger follows it to the end and
its event becomes the same result the synchronous operator builds, through the connection alone.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_agentvault.operators.stage_timing import StageTiming
from airflow_agentvault.protocol.models import TaskState
from airflow_agentvault.protocol.result import outcome_of
from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger, AgentVaultTaskExistsTrigger
from airflow_agentvault.triggers.events import STATUS_EXISTS, event_to_outcome

from interop import servers
from interop.matrix_scenarios import SyncApi

pytestmark = pytest.mark.integration

TIMING = {"verify_interval": 0.1, "poll_interval": 0.2, "sse_retry_delay": 0.1, "overall_timeout": 30}
BOUND = 45.0  # seconds any trigger here may take (they take about one)


async def first_event(trigger) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(first(), BOUND)


@pytest.mark.parametrize("row", [r.key for r in servers.ROWS])
async def test_triggers_follow_a_task_to_the_operators_result(monkeypatch, interop_server, row):
    server = interop_server(row)
    conn_id = f"interop_{row}".replace("-", "_").replace(".", "_")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
        {"conn_type": "agentvault", "host": server.rpc_url, "extra": {"dialect": server.dialect}}))
    api = SyncApi(server)
    try:
        text = "trigger sleep=0.6"
        task_id = await api.send(text)

        exists = await first_event(AgentVaultTaskExistsTrigger(
            conn_id=conn_id, agent_task_id=task_id, **StageTiming.begin(TIMING).trigger_kwargs()))
        assert exists["status"] == STATUS_EXISTS, exists

        done = await first_event(AgentVaultStreamTrigger(
            conn_id=conn_id, agent_task_id=task_id, **StageTiming.begin(TIMING).trigger_kwargs()))
        result = event_to_outcome(done, agent_url=server.rpc_url)
        final = await api.get(task_id)
    finally:
        await api.aclose()
    assert final.state is TaskState.COMPLETED
    assert result["state"] == "COMPLETED"
    assert [a["content"] for a in result["artifacts"]] == [server.expected_artifact(text)]
    as_operator_builds = outcome_of(final, agent_url=server.rpc_url)
    assert {k: v for k, v in result.items() if k != "metadata"} == {
        k: v for k, v in as_operator_builds.items() if k != "metadata"}
    assert result["metadata"]["delivered_by"] in ("stream", "polling", "already-finished")
