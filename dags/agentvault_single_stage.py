"""One agent stage: start a task, wait until the agent knows it, stream it to its result (sync and deferred)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator
from airflow_agentvault.params import timing_from_params, timing_params
from airflow_agentvault.sensors.agentvault import AgentVaultTaskExistsSensor

DOC = """
### One AgentVault stage ({mode})
`initiate` starts a task on the agent of connection `agentvault_default` and passes its id on;
`wait_until_visible` checks `tasks/get` until the agent knows the task; `stream` follows its events
over SSE (falling back to polling) and returns the result. Every timing knob is a DAG param.
{extra}
"""


def single_stage(dag_id: str, *, deferrable: bool) -> DAG:
    timing = timing_from_params()
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["agentvault", "example"],
        params={
            "topic": Param("solar power adoption", type="string", description="What the agent should research."),
            **timing_params(),
        },
        doc_md=DOC.format(
            mode="deferrable" if deferrable else "synchronous",
            extra="The sensor and the stream wait in the triggerer, holding no worker slot." if deferrable else "",
        ),
    ) as dag:
        initiate = AgentVaultInitiateOperator(
            task_id="initiate",
            text="Research this topic: {{ params.topic }}",
            data={"topic": "{{ params.topic }}"},
        )
        visible = AgentVaultTaskExistsSensor(
            task_id="wait_until_visible", agent_task_id=initiate.output, timing=timing, deferrable=deferrable
        )
        stream = AgentVaultStreamOperator(
            task_id="stream", agent_task_id=initiate.output, timing=timing, deferrable=deferrable
        )
        initiate >> visible >> stream
    return dag


sync_stage = single_stage("agentvault_single_stage", deferrable=False)
deferred_stage = single_stage("agentvault_single_stage_deferred", deferrable=True)

if __name__ == "__main__":  # `python dags/agentvault_single_stage.py`: one run in-process, logs on stdout
    sync_stage.test()
