"""
The 7-stage research pipeline, written with the stage helper, in split and compact form.

topic research -> crawling -> extraction -> fact verification -> synthesis -> editing -> visualisation;
each stage is an agent task whose result feeds the next, and the report and chart are published as
the ``agentvault_research_report`` asset.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, get_parsing_context

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.report import publish_task
from airflow_agentvault.pipelines.research import STAGES, research_stages

DOC = """
### Research pipeline ({form} form)
Seven AgentVault agents, one per stage ({stages}). Each stage gets the topic and the previous
stage's result; results too large for XCom travel by reference through object storage. The edited
report and the chart are written under `$AIRFLOW_HOME/reports/<run id>/` (or `AGENTVAULT_REPORTS_DIR`)
and announced as the asset `agentvault_research_report`. Timing knobs are DAG params (fast defaults).
A topic with several readings (try "jaguar" or "mercury") makes the topic research agent ask which one
you mean: answer under **Required Actions**, and the report says which reading was chosen.
{worker_free}
"""
WORKER_FREE = """
Each stage is **worker-free** (Airflow 3.3+): it starts and ends in the triggerer, and its log says so
("Worker-free: this stage started in the triggerer"); a stage that must (a failure, a large result)
resumes on a worker.
"""


def research_pipeline(dag_id: str, *, compact: bool) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["agentvault", "research", "example"],
        params={
            "topic": Param("solar power adoption", type="string", description="What to research."),
            **timing_params(),
        },
        doc_md=DOC.format(form="compact" if compact else "split", stages=", ".join(s for s, _ in STAGES),
                          worker_free=WORKER_FREE if compact else ""),
    ) as dag:
        # the compact form is deferrable, and so worker-free where Airflow allows (agent_stage decides)
        results = research_stages(compact=compact, ask_person=True, **({"deferrable": True} if compact else {}))
        publish_task(results["edit"], results["visualize"])
    return dag


# A task's process parses this file only to run one task: build just that task's DAG there.
for _dag_id, _compact in (("research_pipeline", False), ("research_pipeline_compact", True)):
    if get_parsing_context().dag_id in (None, _dag_id):
        research_pipeline(_dag_id, compact=_compact)
