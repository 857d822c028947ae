"""The "Agent card" button on a stage's tasks: the card of the agent the task talked to."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


class AgentCardLink(BaseOperatorLink):
    """
    Links a task to its agent's card (name, skills, endpoints, auth), the agent's own public page.

    Airflow computes it on the worker when the task ends and keeps it in XCom, so the UI needs no
    access to the connection; credentials never appear in it (the URL is redacted).
    """

    name = "Agent card"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        hook = getattr(operator, "hook", None)
        return hook.agent_card_url if hook is not None else ""
