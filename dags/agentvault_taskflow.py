"""One agent stage as a TaskFlow task: ``@task.agentvault`` sends what the function returns."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_agentvault.params import timing_from_params, timing_params


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["agentvault", "example"],
    params={"topic": Param("solar power adoption", type="string", description="What the agent should research."),
            **timing_params()},
    doc_md="`@task.agentvault`: the function returns the message; the task returns the agent's result. "
           "`ask_deferred` waits for it in the triggerer; `ask_split` is the split form (send, wait until "
           "visible, stream: three tasks).",
)
def agentvault_taskflow():
    @task.agentvault(timing=timing_from_params())
    def ask(params: dict[str, Any] | None = None) -> str:
        return f"Research this topic: {params['topic']}"

    @task.agentvault(timing=timing_from_params(), deferrable=True)
    def ask_deferred(params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"text": f"Research this topic: {params['topic']}", "data": {"topic": params["topic"]}}

    @task.agentvault(compact=False, timing=timing_from_params(), deferrable=True)
    def ask_split(params: dict[str, Any] | None = None) -> str:
        return f"Research this topic: {params['topic']}"

    @task
    def compare(*results: dict[str, Any]) -> dict[str, Any]:
        return {"states": [r["state"] for r in results], "answers": [r["text"] for r in results]}

    compare(ask(), ask_deferred(), ask_split())


agentvault_taskflow()
