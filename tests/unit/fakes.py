"""Small stand-ins for the Airflow run-time context, for calling execute() directly."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock


class FakeTaskStateStore:
    """The task state store's get/set contract, in memory."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        if value is None:  # as Airflow's store: None is refused, not stored
            raise ValueError("Cannot set value as None")
        self.data[key] = value


class FakeTriggerRecord:
    """The worker-free trigger's record (XComs of its task instance), in a FakeTaskStateStore's dict.

    Upstream tasks' XComs are in ``upstream`` by (task id, key); ``writes`` lists every write in order.
    """

    def __init__(self, store: FakeTaskStateStore | None = None, **values: Any) -> None:
        self.store = store if store is not None else FakeTaskStateStore()
        self.store.data.update(values)
        self.upstream: dict[tuple[str, str], Any] = {}
        self.writes: list[tuple[str, Any]] = []

    @property
    def values(self) -> dict[str, Any]:
        return self.store.data

    async def get(self, key: str, task_id: str | None = None, map_index: int | None = None) -> Any:
        return self.upstream.get((task_id, key)) if task_id else self.store.data.get(key)

    async def put(self, item: tuple[str, Any]) -> None:
        self.writes.append(item)
        self.store.data[item[0]] = item[1]

    async def load(self, keys: tuple[str, ...] | None = None) -> Any:
        from airflow_agentvault.operators.remote_task import KEYS, Record

        return Record.of({key: self.store.data.get(key) for key in keys or KEYS})


def make_context(store: FakeTaskStateStore | None = None, try_number: int = 1) -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.try_number = try_number
    ti.dag_id, ti.run_id, ti.map_index = "unit_dag", "manual__2026-11-24T06:00:00+00:00", -1
    ti.stats_tags = {}
    return {"ti": ti, "task_state_store": store if store is not None else FakeTaskStateStore()}


def set_connection(monkeypatch, conn_id: str, host: str, password: str | None = None, **extra: Any) -> None:
    conn = {"conn_type": "agentvault", "host": host, "extra": extra}
    if password:
        conn["password"] = password
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def rpc_result(result: Any) -> dict[str, Any]:
    return {"json": {"jsonrpc": "2.0", "result": result, "id": "x"}, "headers": {"Content-Type": "application/json"}}


def rpc_error(code: int, message: str) -> dict[str, Any]:
    return {
        "json": {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": "x"},
        "headers": {"Content-Type": "application/json"},
    }


def task_json(task_id: str, state: str, *, agent_text: str | None = None, artifacts: list | None = None,
              metadata: dict | None = None) -> dict[str, Any]:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "hi"}], "metadata": None}]
    if agent_text:
        messages.append({"role": "assistant", "parts": [{"type": "text", "content": agent_text}], "metadata": None})
    return {
        "id": task_id, "state": state, "createdAt": "2026-11-24T06:12:52.562068Z",
        "updatedAt": "2026-11-24T06:12:57.063833Z", "messages": messages, "artifacts": artifacts or [],
        "metadata": metadata,
    }


def sse_body(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}


def kept_while_parked(task_id: str, sent: str = "") -> list[str]:
    """What a wait parked on its doorbell still holds that it should not: after a full collection, a task
    model or an answer naming ``task_id``, the message it sent (one with the text ``sent``), or a suspended
    routine of the follower."""
    import gc
    import inspect
    import types

    from airflow_agentvault.protocol.exchange import Response
    from airflow_agentvault.protocol.follow import Follower
    from airflow_agentvault.protocol.models import Message, Task

    routines = {f.__code__: name for name, f in vars(Follower).items() if inspect.isfunction(f)}
    gc.collect()
    kept = []
    for o in gc.get_objects():
        if type(o) is Task and o.id == task_id or type(o) is Response and task_id.encode() in o.body:
            kept.append(f"{type(o).__name__} of {task_id}")
        elif sent and type(o) is Message and sent in repr(o):
            kept.append("the message sent")
        elif type(o) is types.GeneratorType and o.gi_frame is not None and o.gi_code in routines:
            kept.append(f"Follower.{routines[o.gi_code]}")
    return kept
