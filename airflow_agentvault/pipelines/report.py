"""
Publishing a pipeline's report: the Markdown report and the chart as files, announced as an Asset.

The report stage returns a Markdown artifact and the chart stage an SVG and/or a PNG artifact; this
writes them (``chart.svg``, ``chart.png``) under the reports location (``AGENTVAULT_REPORTS_DIR``, ``[agentvault] reports_dir``,
or ``$AIRFLOW_HOME/reports``) and the DAG's publish task puts their locations into the asset event,
so downstream DAGs scheduled on :data:`REPORT_ASSET` know where to look.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any

from airflow.sdk import Asset, ObjectStoragePath

from airflow_agentvault import result_storage as storage

REPORT_ASSET = Asset(name="agentvault_research_report", uri="agentvault://research/report")

CHART_SUFFIXES = {"image/svg+xml": "svg", "image/png": "png"}


def reports_base() -> str:
    from airflow_agentvault.compat import conf

    configured = os.environ.get("AGENTVAULT_REPORTS_DIR") or conf.get("agentvault", "reports_dir", fallback=None)
    if configured:
        return configured if "://" in configured else f"file://{os.path.abspath(configured)}"
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return f"file://{os.path.abspath(home)}/reports"


def find_artifact(result: dict[str, Any], media_types: tuple[str, ...]) -> dict[str, Any] | None:
    """The last artifact of ``result`` whose media type is one of ``media_types``."""
    for artifact in reversed(result.get("artifacts") or []):
        if (artifact.get("mediaType") or "").split(";")[0] in media_types:
            return artifact
    return None


def total_usage(results: Any) -> dict[str, int]:
    """
    The pipeline's token total: every remote task's ``metadata.usage`` added up (stand-ins keep theirs).

    A task's result can appear more than once (an ask-person round passes its stage's result on, or
    resumes the same task): each remote task counts once, with the most it reported.
    """
    per_task: dict[Any, dict[str, int]] = {}
    for result in results if isinstance(results, list | tuple) else []:
        usage = result.get("metadata", {}).get("usage") if isinstance(result, dict) else None
        if not isinstance(usage, dict):
            continue
        seen = per_task.setdefault(result.get("task_id") or id(result), {})
        for key, value in usage.items():
            if type(value) is int:
                seen[key] = max(seen.get(key, 0), value)
    total: dict[str, int] = {}
    for usage in per_task.values():
        for key, value in usage.items():
            total[key] = total.get(key, 0) + value
    return total


def usage_line(usage: dict[str, int]) -> str:
    return (f"\n\n---\n*Tokens used by this pipeline's agents: {usage.get('input_tokens', 0)} in, "
            f"{usage.get('output_tokens', 0)} out.*\n")


def publish_report(topic: str, report_result: dict[str, Any], chart_result: dict[str, Any] | None,
                   *, run_id: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """Write report and chart; return what the asset event should say (locations, metadata, token total)."""
    report_result = storage.resolve_references(report_result)
    chart_result = storage.resolve_references(chart_result) if chart_result else None
    report = find_artifact(report_result, ("text/markdown",))
    if report is None or not isinstance(report.get("content"), str):
        raise ValueError(f"the report stage returned no Markdown artifact (task {report_result.get('task_id')})")
    folder = ObjectStoragePath(reports_base()) / re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    folder.mkdir(parents=True, exist_ok=True)
    report_path = folder / "report.md"
    report_path.write_text(report["content"] + (usage_line(usage) if usage else ""))
    info: dict[str, Any] = {
        "topic": topic,
        "run_id": run_id,
        "report": str(report_path),
        "report_bytes": len(report["content"].encode()),
        "words": len(report["content"].split()),
        **({"usage": usage} if usage else {}),
    }
    # The chart in each format the stage gave (SVG and PNG); "chart" names the last one given, as before.
    for media_type, suffix in CHART_SUFFIXES.items():
        chart = find_artifact(chart_result or {}, (media_type,))
        if chart is None or not chart.get("content"):
            continue
        chart_path = folder / f"chart.{suffix}"
        if suffix == "png":
            chart_path.write_bytes(base64.b64decode(chart["content"]))
        else:
            chart_path.write_text(chart["content"])
        info.setdefault("charts", {})[suffix] = str(chart_path)
    last = find_artifact(chart_result or {}, tuple(CHART_SUFFIXES))
    if last is not None and last.get("content"):
        info["chart"] = info["charts"][CHART_SUFFIXES[last["mediaType"].split(";")[0]]]
    return info


def publish_task(report: Any, chart: Any = None, *, topic: Any = None, task_id: str = "publish_report"):
    """
    A TaskFlow task that publishes ``report`` (and ``chart``) and emits the :data:`REPORT_ASSET` event.

    ``topic`` defaults to the DAG param ``topic``; mapped pipelines pass their mapped topic.
    """
    from airflow.sdk import task

    @task(task_id=task_id, outlets=[REPORT_ASSET])
    def publish(report_result: dict[str, Any], chart_result: dict[str, Any] | None = None,
                topic_name: str | None = None, **context: Any):
        topic_name = topic_name or str(context["params"].get("topic", ""))
        ti = context["ti"]
        run_name = context["run_id"] + (f"_{ti.map_index}" if getattr(ti, "map_index", -1) >= 0 else "")
        stages = [t for t in context["dag"].task_ids if t != ti.task_id]
        # This topic's stages only: without map_indexes, Airflow pulls every map index, so a mapped pipeline's
        # report would count the other topics' tasks that had ended by then.
        results = ti.xcom_pull(task_ids=stages, map_indexes=getattr(ti, "map_index", -1))
        info = publish_report(topic_name, report_result, chart_result, run_id=run_name, usage=total_usage(results))
        context["outlet_events"][REPORT_ASSET].extra = info
        print(f"Report: {info['report']}" + (f"\nChart: {info['chart']}" if "chart" in info else ""))
        return info

    return publish(report, chart, topic)
