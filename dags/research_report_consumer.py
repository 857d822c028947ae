"""Runs whenever a research pipeline publishes a report: reads the asset event and indexes the report."""

from __future__ import annotations

import pendulum
from airflow.sdk import ObjectStoragePath, dag, task

from airflow_agentvault.pipelines.report import REPORT_ASSET


@dag(
    dag_id="research_report_consumer",
    schedule=[REPORT_ASSET],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["agentvault", "research", "example", "asset"],
    doc_md="""
    ### Research report consumer
    Scheduled on the `agentvault_research_report` asset. Each triggering event carries the report's
    location and metadata (topic, run id, word count, chart location); this DAG reads the report and
    logs its headings, as a stand-in for indexing or mailing it.
    """,
)
def research_report_consumer():
    @task
    def index_reports(**context) -> list[dict]:
        indexed = []
        for event in context["triggering_asset_events"][REPORT_ASSET]:
            extra = event.extra
            report = ObjectStoragePath(extra["report"]).read_text()
            headings = [line for line in report.splitlines() if line.startswith("#")]
            print(f"Report on {extra.get('topic')!r}: {extra['report']} ({extra.get('words')} words)")
            for heading in headings:
                print(f"  {heading}")
            indexed.append({"topic": extra.get("topic"), "report": extra["report"], "headings": headings})
        return indexed

    index_reports()


research_report_consumer()
