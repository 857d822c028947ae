"""The example single-agent DAG runs unchanged against every server of the matrix; only the connection changes."""

from __future__ import annotations

import json

import pytest

from dagtest import load_example_dag, stream_xcom
from interop import servers

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("row", [r.key for r in servers.ROWS])
@pytest.mark.parametrize("dialect", ["named", "auto"])
def test_example_dag_runs_with_only_the_connection_changed(monkeypatch, airflow_db, interop_server, row, dialect):
    server = interop_server(row)
    if dialect == "auto":
        conn = {"conn_type": "agentvault", "host": server.base_url, "extra": {"dialect": "auto"}}
    else:
        conn = {"conn_type": "agentvault", "host": server.rpc_url, "extra": {"dialect": server.dialect}}
    monkeypatch.setenv("AIRFLOW_CONN_AGENTVAULT_DEFAULT", json.dumps(conn))
    run = load_example_dag("agentvault_single_stage").test(run_conf={"topic": "tidal energy"})
    assert run.state == "success"
    result = stream_xcom(run)
    assert result["state"] == "COMPLETED" and result["artifacts"]
