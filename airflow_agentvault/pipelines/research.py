"""The research pipeline's stages: what each of the seven agents is asked to do, and the chain of them."""

from __future__ import annotations

from typing import Any

#: How a stage's text names the topic when it is a DAG param.
TOPIC_PARAM = "{{ params.topic }}"

#: (stage id, message text); the agent of stage X is the connection ``research_X``.
STAGES: list[tuple[str, str]] = [
    ("topic_research", f"Break the topic into research questions: {TOPIC_PARAM}"),
    ("crawl", f"Find the documents that answer these questions about {TOPIC_PARAM}"),
    ("extract", "Extract the claims, with their sources, from these documents"),
    ("verify", "Check each claim against the other sources"),
    ("synthesize", f"Write a report on {TOPIC_PARAM} from the verified claims, with citations"),
    ("edit", "Edit the report for clarity and consistency"),
    ("visualize", "Chart the findings of the verification"),
]

STAGE_IDS = [stage_id for stage_id, _ in STAGES]

#: Stages whose agent may ask a person (a topic with several readings: "which jaguar do you mean?").
ASKING_STAGES = frozenset({"topic_research"})


def connection_id(stage_id: str) -> str:
    return f"research_{stage_id}"


def research_stages(topic: Any = TOPIC_PARAM, *, topic_in_text: str | None = None, ask_person: bool = False,
                    **stage_kwargs: Any) -> dict[str, Any]:
    """The seven stages for one topic, each given the topic and the previous stage's result.

    :param topic: the topic (the ``topic`` DAG param by default, or a mapped value).
    :param topic_in_text: what the message text calls the topic (default: ``topic``, when it is text).
    :param ask_person: the stages in ``ASKING_STAGES`` let a person answer their agent's question.
    :param stage_kwargs: the rest of :func:`~airflow_agentvault.pipelines.stage.agent_stage`'s arguments.
    :return: each stage's output (an XCom reference), by stage id.
    """
    from airflow_agentvault.pipelines.stage import agent_stage  # the stage list itself needs no Airflow

    if topic_in_text is None:
        topic_in_text = topic if isinstance(topic, str) else "the topic in the data part"
    results: dict[str, Any] = {}
    previous = None
    for stage_id, text in STAGES:
        data = {"topic": topic} if previous is None else {"topic": topic, "previous": previous}
        asking = {"ask_person": True, "max_rounds": 1} if ask_person and stage_id in ASKING_STAGES else {}
        previous = agent_stage(stage_id, agentvault_conn_id=connection_id(stage_id),
                               text=text.replace(TOPIC_PARAM, topic_in_text), data=data, **asking,
                               **stage_kwargs).output
        results[stage_id] = previous
    return results
