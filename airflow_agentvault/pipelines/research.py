"""The research pipeline's stages: what each of the seven agents is asked to do."""

from __future__ import annotations

#: (stage id, message text); the agent of stage X is the connection ``research_X``.
STAGES: list[tuple[str, str]] = [
    ("topic_research", "Break the topic into research questions: {{ params.topic }}"),
    ("crawl", "Find the documents that answer these questions about {{ params.topic }}"),
    ("extract", "Extract the claims, with their sources, from these documents"),
    ("verify", "Check each claim against the other sources"),
    ("synthesize", "Write a report on {{ params.topic }} from the verified claims, with citations"),
    ("edit", "Edit the report for clarity and consistency"),
    ("visualize", "Chart the findings of the verification"),
]

STAGE_IDS = [stage_id for stage_id, _ in STAGES]

#: Stages whose agent may ask a person (a topic with several readings: "which jaguar do you mean?").
ASKING_STAGES = frozenset({"topic_research"})


def connection_id(stage_id: str) -> str:
    return f"research_{stage_id}"
