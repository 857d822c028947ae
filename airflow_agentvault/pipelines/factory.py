"""A pipeline spec file becomes an Airflow DAG through one call: :func:`dag_from_spec`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.report import publish_task
from airflow_agentvault.pipelines.spec import PipelineSpec, load_spec
from airflow_agentvault.pipelines.stage import agent_stage


def dag_from_spec(path: str | Path, **dag_kwargs: Any) -> DAG:
    """
    Validate the spec at ``path`` and build its DAG; a bad spec raises before any task exists.

    Each stage receives its declared ``data`` plus ``previous``: the result of its one upstream stage,
    or a dict of results by stage id when it has several.
    """
    spec = load_spec(path)
    return build_dag(spec, **dag_kwargs)


def build_dag(spec: PipelineSpec, **dag_kwargs: Any) -> DAG:
    params: dict[str, Any] = {
        name: Param(p.default, type=p.type, description=p.description) for name, p in spec.params.items()
    }
    params.update(timing_params(spec.timing_preset))
    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("start_date", pendulum.datetime(2026, 1, 1, tz="UTC"))
    dag_kwargs.setdefault("catchup", False)
    with DAG(
        dag_id=spec.dag_id,
        params=params,
        description=spec.description,
        doc_md=spec.doc_md or spec.description,
        tags=spec.tags or ["agentvault"],
        **dag_kwargs,
    ) as dag:
        outputs: dict[str, Any] = {}
        for stage in spec.stage_order():
            data = dict(stage.data)
            if stage.after:
                data["previous"] = (
                    outputs[stage.after[0]] if len(stage.after) == 1 else {u: outputs[u] for u in stage.after}
                )
            built = agent_stage(
                stage.id,
                agentvault_conn_id=stage.agent,
                text=stage.text,
                data=data or None,
                timing_overrides=stage.timing,
                compact=spec.compact_of(stage),
                deferrable=spec.deferrable,
                ask_person=spec.ask_person if stage.ask_person is None else stage.ask_person,
                max_rounds=spec.max_rounds,
                response_timeout=timedelta(seconds=spec.response_timeout) if spec.response_timeout else None,
                **spec.options_of(stage),
            )
            outputs[stage.id] = built.output
        if spec.publish:
            publish_task(outputs[spec.publish.report], outputs[spec.publish.chart] if spec.publish.chart else None)
    return dag
