"""The research pipeline built from its spec file, research_pipeline.yaml, by one factory call."""

from __future__ import annotations

from pathlib import Path

from airflow_agentvault.pipelines.factory import dag_from_spec

dag_from_spec(Path(__file__).with_name("research_pipeline.yaml"))
