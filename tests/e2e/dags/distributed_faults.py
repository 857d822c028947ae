"""One compact agent stage with retries, followed on a worker or in a triggerer (or worker-free: started and
ended in one): the distributed stack's fault tests kill the process that follows it and check that the
stage still ends with the exact result."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.params import timing_from_params, timing_params

for _dag_id, _deferrable, _worker_free in (("fault_stage", False, False), ("fault_stage_deferred", True, False),
                                           ("fault_stage_worker_free", True, True)):
    with DAG(_dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
             params={"topic": Param("tidal energy", type="string"), **timing_params()},
             default_args={"retries": 2, "retry_delay": timedelta(0)}):
        AgentVaultStageOperator(
            task_id="stage", text="Research this topic: {{ params.topic }}", data={"topic": "{{ params.topic }}"},
            timing=timing_from_params(), deferrable=_deferrable, worker_free=_worker_free,
        )
