"""Airflow's own floor: chains of trivial tasks as long as the research pipeline's split and compact forms."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, chain, task


def trivial_chain(length: int) -> DAG:
    with DAG(f"trivial_chain_{length}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
             catchup=False, doc_md=f"{length} chained no-op tasks: the scheduling floor.") as dag:

        @task
        def noop(index: int) -> int:
            return index

        chain(*[noop.override(task_id=f"step_{i:02d}")(i) for i in range(length)])
    return dag


# 7 stages x 3 tasks + publish, 7 compact stages + publish, and the 7 stages alone
trivial_chain(22)
trivial_chain(8)
trivial_chain(7)
