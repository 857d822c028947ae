"""
Results too large for XCom go to Airflow object storage and travel between stages by reference.

A stage's result above ``max_result_bytes`` is written as JSON under ``result_storage`` (an
``ObjectStoragePath`` URL, the local file system by default) and XCom holds a small stand-in with
``result_ref``. The next stage's initiate operator swaps any such stand-in back for the full result
before sending it to its agent, so authors never see the difference.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.sdk import ObjectStoragePath

REF_KEY = "result_ref"


def default_result_storage() -> str:
    """``[agentvault] result_storage`` from the Airflow config, else a folder in AIRFLOW_HOME."""
    from airflow.configuration import conf

    configured = conf.get("agentvault", "result_storage", fallback=None)
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return f"file://{os.path.abspath(home)}/agentvault-results"


def offload(result: dict[str, Any], base: str, *, name: str) -> dict[str, Any]:
    """Write ``result`` under ``base``/``name``.json and return its XCom-sized stand-in."""
    path = ObjectStoragePath(base) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(result, separators=(",", ":"), default=str)
    with path.open("w") as handle:
        handle.write(payload)
    return {
        "task_id": result.get("task_id"),
        "state": result.get("state"),
        "text": (result.get("text") or "")[:2000],
        "artifacts": [
            {k: v for k, v in artifact.items() if k != "content"} for artifact in result.get("artifacts", [])
        ],
        "metadata": {**result.get("metadata", {}), "offloaded_bytes": len(payload.encode())},
        REF_KEY: str(path),
    }


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(REF_KEY), str)


def load(reference: dict[str, Any]) -> dict[str, Any]:
    with ObjectStoragePath(reference[REF_KEY]).open("r") as handle:
        return json.load(handle)


def resolve_references(value: Any) -> Any:
    """Replace every stand-in inside ``value`` (dicts and lists, any depth) with the stored result."""
    if is_reference(value):
        return load(value)
    if isinstance(value, dict):
        return {key: resolve_references(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_references(item) for item in value]
    return value
