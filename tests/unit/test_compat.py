"""What an older Airflow gets instead of the features it lacks (see airflow_agentvault/compat.py)."""

from __future__ import annotations

import pytest

from airflow_agentvault import compat
from airflow_agentvault.operators.agentvault import AgentVaultInitiateOperator, AgentVaultStreamOperator


def test_versions_are_read_from_airflow():
    assert compat.AIRFLOW_VERSION >= (3, 1, 0)
    assert compat.AIRFLOW_V_3_3_PLUS == (compat.AIRFLOW_VERSION >= (3, 3, 0))


@pytest.mark.skipif(compat.ExceptionRetryPolicy is not None, reason="this Airflow has retry policies")
def test_without_retry_policies_the_operators_keep_airflows_standard_retries():
    for operator in (AgentVaultInitiateOperator(task_id="i", text="hi"),
                     AgentVaultStreamOperator(task_id="s", agent_task_id="t-1")):
        assert getattr(operator, "retry_policy", None) is None


@pytest.mark.skipif(compat.ExceptionRetryPolicy is None, reason="this Airflow has no retry policies")
def test_with_retry_policies_the_operators_get_ours():
    assert AgentVaultStreamOperator(task_id="s", agent_task_id="t-1").retry_policy is not None


async def test_secrets_are_masked_in_the_loop_on_every_airflow(monkeypatch):
    seen = []
    monkeypatch.setattr(compat.airflow.sdk.log, "mask_secret", seen.append)
    if hasattr(compat.airflow.sdk.log, "amask_secret"):
        async def amask(secret):
            seen.append(secret)
        monkeypatch.setattr(compat.airflow.sdk.log, "amask_secret", amask)
    await compat.amask_secret("s3cret")
    assert seen == ["s3cret"]
