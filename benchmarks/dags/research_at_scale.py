"""The research pipeline over many topics, for the scale benchmark: mapped (deferrable, synchronous) and
one run per topic (worker-free, deferrable).

Like ``research_pipeline_mapped`` without its bound on topics at once or the report step: each of
the seven stages is one compact stage task per topic, so every topic runs as soon as a slot is free
and the figures are the stages' own. A mapped stage cannot start in the triggerer (Airflow reads only
class-level start arguments for mapped tasks), so the worker-free form is the compact pipeline for one
topic (the ``topic`` param), triggered once per topic: what a team does that starts a run per topic.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task, task_group

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.research import research_stages

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def research_at_scale(deferrable: bool) -> DAG:
    mode = "deferrable" if deferrable else "sync"
    with DAG(
        f"research_at_scale_{mode}",
        schedule=None,
        start_date=START,
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


def research_per_topic(worker_free: bool) -> DAG:
    """The seven compact stages for the run's ``topic``; as many runs at once as are triggered."""
    mode = "worker_free" if worker_free else "deferrable_runs"
    with DAG(
        f"research_at_scale_{mode}",
        schedule=None,
        start_date=START,
        catchup=False,
        max_active_runs=10_000,
        max_active_tasks=10_000,
        params={"topic": Param("coral reef bleaching", type="string"), **timing_params()},
        doc_md=f"The seven research stages for one topic, {mode.replace('_', ' ')}; one run per topic.",
    ) as dag:
        research_stages(compact=True, deferrable=True, worker_free=worker_free)
    return dag


research_at_scale(deferrable=True)
research_at_scale(deferrable=False)
research_per_topic(worker_free=True)
research_per_topic(worker_free=False)
