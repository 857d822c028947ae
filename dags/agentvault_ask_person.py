"""
A stage whose agent asks a question: a person answers under Required Actions and the task goes on.

The reference agent asks because the message's metadata tells it to (a real agent asks on its own);
the stage asks a person instead of failing, sends the answer to the same remote task and follows it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_agentvault.params import timing_params
from airflow_agentvault.pipelines.stage import agent_stage

DOC = """
### A stage that asks a person
The agent of connection `agentvault_default` stops with a question ("Which mercury do you mean?",
with the options it offers), then a second one (free text). Each appears under **Required Actions**
with the agent's words; while it waits, the task holds no worker slot and no trigger. Your answer
goes back to the same agent task, which then finishes; the result's `metadata.questions` lists each
round. Rejecting, or not answering within `response_timeout` (1 hour), cancels the agent's task.
"""

QUESTIONS = [
    {"text": "Which mercury do you mean?", "options": ["the planet", "the chemical element"]},
    "Which years should the research cover?",
]

with DAG(
    dag_id="agentvault_ask_person",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["agentvault", "example", "human-in-the-loop"],
    params={"topic": Param("mercury", type="string", description="What the agent should research."),
            **timing_params()},
    doc_md=DOC,
):
    agent_stage(
        "research",
        text="Research this topic: {{ params.topic }}",
        message_metadata={"reference_agent": {"questions": QUESTIONS}},
        ask_person=True,
        max_rounds=2,
        response_timeout=timedelta(hours=1),
        deferrable=True,
    )
