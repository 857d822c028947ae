"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_agentvault import __version__
from airflow_agentvault.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-agentvault",
        "name": "AgentVault",
        "description": "Run multi-agent research pipelines on AgentVault and A2A agents.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "AgentVault", "external-doc-url": "https://github.com/SecureAgentTools/AgentVault",
             "tags": ["software"]}
        ],
        "operators": [
            {"integration-name": "AgentVault", "python-modules": ["airflow_agentvault.operators.agentvault"]}
        ],
        "sensors": [{"integration-name": "AgentVault", "python-modules": ["airflow_agentvault.sensors.agentvault"]}],
        "hooks": [{"integration-name": "AgentVault", "python-modules": ["airflow_agentvault.hooks.agentvault"]}],
        "triggers": [
            {"integration-name": "AgentVault", "python-modules": ["airflow_agentvault.triggers.agentvault"]}
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_agentvault.hooks.agentvault.AgentVaultHook",
                "hook-name": "AgentVault Agent",
                "connection-type": "agentvault",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
