"""Helpers for running the example DAGs in-process with dag.test() (needs the ``airflow_db`` fixture)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_example_dag(dag_id: str):
    """A DAG of the repo's dags folder, built in this process (for dag.test())."""
    sys.path.insert(0, str(REPO / "dags"))
    try:
        from agentvault_single_stage import single_stage
    finally:
        sys.path.remove(str(REPO / "dags"))
    return single_stage(dag_id, deferrable=False)


def stream_xcom(run, task_id: str = "stream"):
    """A task's XCom return value from a dag.test() run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
                XComModel.task_id == task_id, XComModel.key == "return_value",
            )
        ).one()
        return XComModel.deserialize_value(row)
