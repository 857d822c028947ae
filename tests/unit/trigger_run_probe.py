"""
Runs a stream trigger once in a fresh process, under asyncio debug mode; prints what the run imported.

Used by test_trigger_loop.py: a trigger must find everything it needs loaded with its module, so the
triggerer's event loop never waits for an import or a schema build of ours.
"""
import asyncio
import json
import logging
import os
import sys

RPC = "http://agent.test/a2a/"
os.environ["AIRFLOW_CONN_LOOP_AGENT"] = json.dumps({"conn_type": "agentvault", "host": RPC})
import httpx  # noqa: E402
import respx  # noqa: E402

from airflow_agentvault.operators.stage_timing import StageTiming  # noqa: E402
from airflow_agentvault.triggers.agentvault import AgentVaultStreamTrigger  # noqa: E402

slow = []
class Catch(logging.Handler):
    def emit(self, record):
        text = record.getMessage()
        if "took" in text and "Executing" in text:
            slow.append(text)
logging.getLogger("asyncio").addHandler(Catch())
logging.getLogger("asyncio").setLevel(logging.WARNING)

def rpc(result):
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": "x", "result": result})

TASK = {"id": "t-1", "state": "WORKING", "messages": [], "artifacts": []}
DONE = {"id": "t-1", "state": "COMPLETED", "messages": [{"role": "assistant", "parts": [{"type": "text", "content": "done"}]}],
        "artifacts": [{"id": "a", "type": "result", "content": {"answer": 42}}]}
STREAM = (b'event: task_status\ndata: {"taskId": "t-1", "state": "WORKING", "timestamp": "2026-01-01T00:00:00Z"}\n\n'
          b'event: task_artifact\ndata: {"taskId": "t-1", "artifact": {"id": "a", "type": "result", "content": {"answer": 42}}}\n\n'
          b'event: task_status\ndata: {"taskId": "t-1", "state": "COMPLETED", "timestamp": "2026-01-01T00:00:01Z"}\n\n')
gets = iter([TASK, DONE, DONE, DONE])

def answer(request):
    method = json.loads(request.content)["method"]
    if method == "tasks/sendSubscribe":
        return httpx.Response(200, content=STREAM, headers={"Content-Type": "text/event-stream"})
    return rpc(next(gets))

async def main():
    asyncio.get_running_loop().slow_callback_duration = float(sys.argv[1])
    with respx.mock:
        respx.post(RPC).mock(side_effect=answer)
        trigger = AgentVaultStreamTrigger(conn_id="loop_agent", agent_task_id="t-1",  # as the triggerer restores it
                                          **StageTiming.begin({"sse_retry_delay": 0}).trigger_kwargs())
        async for event in trigger.run():
            print(event.payload["status"], file=sys.stderr)

from airflow_agentvault.protocol import models  # noqa: E402

deferred = sorted(name for name, model in vars(models).items()
                  if isinstance(model, type) and issubclass(model, models.WireModel) and model is not models.WireModel
                  and not model.__pydantic_complete__)
before = set(sys.modules)
asyncio.run(main(), debug=True)
print(json.dumps({"slow": slow, "imported": sorted(set(sys.modules) - before), "deferred_models": deferred}))
