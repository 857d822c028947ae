"""The research pipeline mapped over many topics, deferrable and synchronous, for the scale benchmark.

Like ``research_pipeline_mapped`` without its bound on topics at once or the report step: each of
the seven stages is one compact stage task per topic, so every topic runs as soon as a slot is free
and the figures are the stages' own.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task, task_group

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.research import research_stages


def research_at_scale(deferrable: bool) -> DAG:
    mode = "deferrable" if deferrable else "sync"
    with DAG(
        f"research_at_scale_{mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_tasks=10_000,
        params={"topics": Param(["coral reef bleaching"], type="array", minItems=1), **timing_params()},
        doc_md=f"The seven research stages per topic, {mode}.",
    ) as dag:

        @task
        def topics(**context) -> list[str]:
            return context["params"]["topics"]

        @task_group(group_id="research")
        def research(topic: str) -> None:
            research_stages(topic, compact=True, deferrable=deferrable)

        research.expand(topic=topics())
    return dag


research_at_scale(deferrable=True)
research_at_scale(deferrable=False)
