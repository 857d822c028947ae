"""The research pipeline mapped over topics, one compact stage task per agent, once following each agent
on a worker and once in the triggerers: the distributed stack runs both, a LocalExecutor stack the first,
and their results must agree."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task, task_group

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.report import publish_task
from airflow_agentvault.pipelines.research import research_stages


def mapped_research(dag_id: str, *, deferrable: bool):
    @dag(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         params={"topics": Param(["solar power adoption"], type="array"), **timing_params()})
    def pipeline():
        @task
        def topics(**context) -> list[str]:
            return context["params"]["topics"]

        @task_group(group_id="research")
        def research(topic: str):
            results = research_stages(topic, compact=True, deferrable=deferrable)
            publish_task(results["edit"], results["visualize"], topic=topic)

        research.expand(topic=topics())

    return pipeline()


mapped_research("distributed_research", deferrable=False)
mapped_research("distributed_research_deferred", deferrable=True)
