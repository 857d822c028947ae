"""Test helpers for running this provider against a real Airflow."""

from airflow_agentvault.testing.airflow_stack import AirflowStack, AirflowStackError

__all__ = ["AirflowStack", "AirflowStackError"]
