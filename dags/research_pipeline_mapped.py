"""The research pipeline mapped over a list of topics: one mapped stage group per topic."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task, task_group

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.report import publish_task
from airflow_agentvault.pipelines.research import research_stages

#: Upper bound of topics researched at once (each stage task of the group honours it).
MAX_PARALLEL_TOPICS = 4


@dag(
    dag_id="research_pipeline_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["agentvault", "research", "example", "mapped"],
    max_active_tasks=3 * MAX_PARALLEL_TOPICS,
    params={
        "topics": Param(
            ["solar power adoption", "coral reef bleaching"],
            type="array",
            items={"type": "string", "minLength": 1},
            minItems=1,
            description="One pipeline run per topic (dynamic task mapping).",
        ),
        **timing_params(),
    },
    doc_md="""
    ### Research pipeline, one mapped group per topic
    The `topics` param lists the topics; each gets the full 7-stage pipeline as one mapped task group
    (`research`), and its own report and chart. At most `MAX_PARALLEL_TOPICS` (4) topics run a stage at
    once: each stage task has `max_active_tis_per_dagrun` set to it. Airflow reads concurrency limits
    when it parses the DAG, so the bound is a constant of this file, not a run param.
    """,
)
def research_pipeline_mapped():
    @task
    def topics(**context) -> list[str]:
        wanted = context["params"]["topics"]
        print(f"Researching {len(wanted)} topics, at most {MAX_PARALLEL_TOPICS} at once")
        return wanted

    @task_group(group_id="research")
    def research(topic: str):
        results = research_stages(topic, compact=True, max_active_tis_per_dagrun=MAX_PARALLEL_TOPICS)
        publish_task(results["edit"], results["visualize"], topic=topic)

    research.expand(topic=topics())


research_pipeline_mapped()
