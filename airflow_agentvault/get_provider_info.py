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
        "config": {
            "agentvault": {
                "description": "Where the AgentVault provider keeps what does not fit in XCom, and its reports.",
                "options": {
                    "result_storage": {
                        "description": "Object storage URL for stage results above max_result_bytes; they are "
                                       "passed on by reference. Default: agentvault-results under AIRFLOW_HOME.",
                        "version_added": "0.1.0", "type": "string", "example": "s3://my-bucket/agentvault-results",
                        "default": None,
                    },
                    "reports_dir": {
                        "description": "Folder the research pipeline publishes its reports and charts to "
                                       "(AGENTVAULT_REPORTS_DIR overrides it). Default: reports under AIRFLOW_HOME.",
                        "version_added": "0.1.0", "type": "string", "example": "/data/research-reports",
                        "default": None,
                    },
                },
            },
        },
        "extra-links": ["airflow_agentvault.links.AgentCardLink"],
        "task-decorators": [
            {"class-name": "airflow_agentvault.decorators.agentvault.agentvault_task", "name": "agentvault"}
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
