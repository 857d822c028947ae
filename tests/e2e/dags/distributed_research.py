"""The research pipeline mapped over topics, one compact stage task per agent, once following each agent
on a worker and once in the triggerers: the distributed stack runs both, a LocalExecutor stack the first,
and their results must agree."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task, task_group

from airflow_agentvault.operators.stage import AgentVaultStageOperator
from airflow_agentvault.params import timing_from_params, timing_params
from airflow_agentvault.pipelines.report import publish_task
from airflow_agentvault.pipelines.research import STAGES, connection_id


def mapped_research(dag_id: str, *, deferrable: bool):
    @dag(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         params={"topics": Param(["solar power adoption"], type="array"), **timing_params()})
    def pipeline():
        @task
        def topics(**context) -> list[str]:
            return context["params"]["topics"]

        @task_group(group_id="research")
        def research(topic: str):
            previous = None
            results = {}
            for stage_id, text in STAGES:
                data = {"topic": topic} if previous is None else {"topic": topic, "previous": previous}
                previous = AgentVaultStageOperator(
                    task_id=stage_id, agentvault_conn_id=connection_id(stage_id), timing=timing_from_params(),
                    text=text.replace("{{ params.topic }}", "the topic in the data part"), data=data,
                    deferrable=deferrable,
                ).output
                results[stage_id] = previous
            publish_task(results["edit"], results["visualize"], topic=topic)

        research.expand(topic=topics())

    return pipeline()


mapped_research("distributed_research", deferrable=False)
mapped_research("distributed_research_deferred", deferrable=True)
