"""Smallest DAG that proves deferral under a real scheduler + triggerer.

``wait_1s`` defers to the triggerer (DateTimeTrigger ~1 s after the task starts) and is
resumed on a worker; ``produce`` then logs a marker line and returns a value (XCom).
"""

from __future__ import annotations

import logging

import pendulum
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import dag, task

LOG_MARKER = "e2e-smoke: producing value"
RESULT = {"answer": 42, "source": "e2e_smoke"}


@dag(
    dag_id="e2e_smoke",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
)
def e2e_smoke():
    # Rendered when the task starts, so the sensor always defers (a TimeDeltaSensor counts
    # from the run's start and may already be satisfied when the task begins).
    wait = DateTimeSensorAsync(
        task_id="wait_1s",
        target_time="{{ (macros.datetime.utcnow() + macros.timedelta(seconds=1)).isoformat() }}+00:00",
    )

    @task
    def produce(**context) -> dict:
        logging.getLogger("airflow.task").info("%s conf=%s", LOG_MARKER, context["dag_run"].conf)
        return {**RESULT, "conf": context["dag_run"].conf}

    wait >> produce()


e2e_smoke()
