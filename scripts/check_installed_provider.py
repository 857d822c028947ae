"""What scripts/test-wheel.sh runs inside a venv holding only Airflow and the provider's wheel.

The provider must work where users install it, without the reference agents' distribution: Airflow
discovers it, registers its connection form (Airflow 3.3 on), and a one-stage DAG run with
``dag.test()`` gets the reference agent's answer. The agent runs elsewhere (its URL in AGENT_URL);
AIRFLOW_HOME is an empty folder of the caller's, and the metadata database is SQLite in it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

TEXT = "hello from the installed wheel"


def check_discovery() -> str:
    from airflow.providers_manager import ProvidersManager

    from airflow_agentvault.compat import AIRFLOW_V_3_3_PLUS

    manager = ProvidersManager()
    assert "airflow-agentvault" in manager.providers, sorted(manager.providers)
    assert "agentvault" in manager.hooks, "no hook for the agentvault connection type"
    if not AIRFLOW_V_3_3_PLUS:  # forms from provider info came with Airflow 3.3 (compat.py)
        return "connection type registered"
    assert "extra__agentvault__auth_type" in manager.connection_form_widgets, sorted(manager.connection_form_widgets)
    assert manager.field_behaviours["agentvault"]["hidden_fields"] == ["schema", "port"]
    return "connection type and its form registered"


#: The one-stage DAG, written to the dags folder: dag.test() runs a DAG its dags folder holds.
DAG_FILE = f"""
import pendulum
from airflow.sdk import DAG

from airflow_agentvault.operators.stage import AgentVaultStageOperator

with DAG("installed_wheel_stage", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
    AgentVaultStageOperator(task_id="stage", agentvault_conn_id="installed_wheel_agent", text={TEXT!r})
"""


def run_one_stage(agent_url: str) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    os.environ["AIRFLOW_CONN_INSTALLED_WHEEL_AGENT"] = json.dumps({"conn_type": "agentvault", "host": agent_url})
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "installed_wheel_stage.py"
    path.write_text(DAG_FILE)
    spec = importlib.util.spec_from_file_location("installed_wheel_stage", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    run = dag.test()
    assert run.state == "success", run.state
    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
            XComModel.task_id == "stage", XComModel.key == "return_value",
        )).one()
        result = XComModel.deserialize_value(row)
    assert result["state"] == "COMPLETED", result
    assert result["text"] == f"Reference answer: {TEXT}", result["text"]
    return f"a one-stage DAG run got {result['text']!r}"


def main() -> int:
    agent_url = os.environ["AGENT_URL"]
    assert importlib.util.find_spec("agentvault_stack") is None, "the stack distribution is installed too"
    print(f"installed provider: {check_discovery()}", flush=True)
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                   check=True, capture_output=True, timeout=300)
    print(f"installed provider: {run_one_stage(agent_url)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
