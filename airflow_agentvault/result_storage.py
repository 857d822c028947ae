"""
A stage's result: delivered to XCom, or (too large) to Airflow object storage and passed on by reference.

A stage's result above ``max_result_bytes`` is written as JSON under ``result_storage`` (an
``ObjectStoragePath`` URL, the local file system by default) and XCom holds a small stand-in with
``result_ref``. The next stage's initiate operator swaps any such stand-in back for the full result
before sending it to its agent, so authors never see the difference.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_agentvault.protocol.models import Task
from airflow_agentvault.protocol.result import fit_result, outcome_of, result_size

REF_KEY = "result_ref"


def default_result_storage() -> str:
    """``[agentvault] result_storage`` from the Airflow config, else a folder in AIRFLOW_HOME."""
    from airflow_agentvault.compat import conf

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
    """A stand-in made by :func:`offload`: its reference and the size it recorded."""
    return (
        isinstance(value, dict)
        and isinstance(value.get(REF_KEY), str)
        and isinstance(value.get("metadata"), dict)
        and "offloaded_bytes" in value["metadata"]
    )


def load(reference: dict[str, Any], base: str | None = None) -> dict[str, Any]:
    """The stored result of a stand-in; only from under the result storage, never from elsewhere."""
    base = (base or default_result_storage()).rstrip("/") + "/"
    location = reference[REF_KEY]
    if not location.startswith(base) or "/../" in location:
        raise ValueError(f"refusing to load a result from {location!r}: it is not under {base!r}")
    with ObjectStoragePath(location).open("r") as handle:
        return json.load(handle)


def _is_stage_result(value: Any) -> bool:
    return isinstance(value, dict) and "artifacts" in value and "state" in value


def resolve_references(value: Any, base: str | None = None) -> Any:
    """
    Replace the stand-ins inside ``value`` (a stage's message data) with the stored results.

    It looks through plain dicts and lists (``{"previous": {"crawl": <stand-in>}}``) but never into a
    stage result: what an agent returned is data, and a ``result_ref`` inside it is never followed.
    """
    if is_reference(value):
        return load(value, base)
    if _is_stage_result(value):
        return value
    if isinstance(value, dict):
        return {key: resolve_references(item, base) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_references(item, base) for item in value]
    return value


def fitted(task: Task, *, agent_url: str, metadata: dict[str, Any], status_message: str | None,
           max_result_bytes: int, truncate: bool, storage: str, asking: bool = False
           ) -> tuple[dict[str, Any], bool]:
    """
    The final task -> (the XCom result, False), or (the full result, True) when it must be stored first.

    Raises the typed error the task's state stands for. A question for a person always travels in XCom,
    its artifacts' contents dropped if need be: the step that asks reads the task afresh.
    """
    result = outcome_of(task, agent_url=agent_url, metadata=metadata, status_message=status_message,
                        max_result_bytes=sys.maxsize, asking=asking)
    if "question" in result:
        return fit_result(result, max_result_bytes=max_result_bytes, truncate=True), False
    if result_size(result) <= max_result_bytes or truncate or not storage:
        return fit_result(result, max_result_bytes=max_result_bytes, truncate=truncate), False
    return result, True


def deliver(task: Task, *, agent_url: str, metadata: dict[str, Any], status_message: str | None,
            max_result_bytes: int, truncate: bool, storage: str, name: str, log: Any, asking: bool = False
            ) -> dict[str, Any]:
    """
    The final task -> the XCom result, or the typed error its state stands for (see :func:`fitted`).

    A result above ``max_result_bytes`` is truncated (``truncate``), stored under ``storage`` and passed
    on by reference, or (no storage) refused with a clear error.
    """
    result, too_big = fitted(task, agent_url=agent_url, metadata=metadata, status_message=status_message,
                             max_result_bytes=max_result_bytes, truncate=truncate, storage=storage, asking=asking)
    if not too_big:
        return result
    reference = offload(result, storage, name=name)
    log.info("Result is %d bytes, above the XCom limit of %d: stored at %s, passed on by reference",
             result_size(result), max_result_bytes, reference[REF_KEY])
    return reference
