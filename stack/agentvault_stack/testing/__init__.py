"""Test helpers for running this provider against a real Airflow.

Names are imported lazily, so ``python -m agentvault_stack.testing.airflow_stack`` (the
demo) does not import its own module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["PROVIDER_MODULES", "AirflowStack", "AirflowStackError", "DistributedAirflowStack"]

if TYPE_CHECKING:
    from agentvault_stack.testing.airflow_stack import PROVIDER_MODULES, AirflowStack, AirflowStackError
    from agentvault_stack.testing.distributed_stack import DistributedAirflowStack


def __getattr__(name: str) -> Any:
    if name == "DistributedAirflowStack":
        from agentvault_stack.testing import distributed_stack

        return distributed_stack.DistributedAirflowStack
    if name in __all__:
        from agentvault_stack.testing import airflow_stack

        return getattr(airflow_stack, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
