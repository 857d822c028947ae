"""The research stages' contract: names, the artifact each hands on, and how a stage finds its input.

Pipeline: ``topic_research -> crawl -> extract -> verify -> synthesize -> edit -> visualize``. Each
stage is sent ``{"topic": ..., "previous": <previous stage's result>}`` as a data part, where a result
is ``{"state", "text", "messages", "artifacts", ...}``; the stage finds the artifact it needs by
``type`` (:func:`find_input`). Each stage's main artifact carries forward what later stages need, so
a stage only ever needs its immediate predecessor:

================  ===================  ===============================================================
stage             artifact id / type   content
================  ===================  ===============================================================
topic_research    plan / research_plan {topic, corpus_topic, questions, keywords, [reading]}
crawl             documents/documents  {topic, questions, keywords, documents: [{id, title, source,
                                       date, topic, score, text}], collection: {kind, name}}
extract           claims / claims      {topic, questions, keywords, documents (no text), claims:
                                       [{id, claim, source_id, source, title, date, sentence_index,
                                       numbers, years, keywords}]}
verify            verification /       {topic, questions, keywords, documents, verified: [{id, label,
                  verification         claim, sources, documents, numbers, question, positions,
                                       evidence}], summary, by_source, by_question}
synthesize        verification (as     the report (Markdown, ``text/markdown``) with citations ``[n]``
                  received), report /  and a ``## References`` list
                  report
edit              changelog /          ``{"changes": [...]}``; the verification passed through; the
                  changelog,           edited report (``text/markdown``, ``metadata.word_count``)
                  verification, report
visualize         chart-png / chart,   horizontal bar chart per source (matplotlib): PNG (``image/png``,
                  chart / chart        base64) first, then SVG (``image/svg+xml``)
================  ===================  ===============================================================

Artifact ids get the task id as prefix on the wire (``ref-1a2b3c4d-report``). When the immediate
predecessor lacks an artifact, :func:`find_input` also looks further back, through the ``previous``
data part of the predecessor's own user message when the result carries one (the provider's results
do not echo the request; ``previous`` may also be a list of results). Every stage also takes direct
input (``{"documents": [...]}`` for extract, ``{"claims": [...]}`` for verify, ...), which is what
the unit tests use.

Why a module of its own: the skills (:mod:`.stages`) and the lookup share these names and shapes.
"""

from __future__ import annotations

import json
from typing import Any

from agentvault_stack.agent.contract import SkillRequest, make_artifact

STAGE_NAMES: tuple[str, ...] = ("topic_research", "crawl", "extract", "verify", "synthesize", "edit", "visualize")

#: Type of each stage's main artifact (the one the next stage looks for).
ARTIFACT_TYPES = {
    "topic_research": "research_plan",
    "crawl": "documents",
    "extract": "claims",
    "verify": "verification",
    "synthesize": "report",
    "edit": "report",
    "visualize": "chart",
}

STAGE_DESCRIPTIONS = {
    "topic_research": "Breaks a topic into research sub-questions and search keywords.",
    "crawl": "Ranks the reference corpus's documents by relevance (BM25) to the research plan.",
    "extract": "Extracts every sentence stating a figure, as a claim with its source.",
    "verify": "Groups claims across sources: corroborated, contested or single-source.",
    "synthesize": "Writes a Markdown report: the verified findings in paragraphs by theme, with numbered citations.",
    "edit": "Edits the report: title case headings, one unit style, digits as written, no repeats, a summary on top.",
    "visualize": "Charts the findings each source supports (corroborated, contested, single-source) as SVG and PNG.",
}

MAX_DEPTH = 16


# -- finding a stage's input ----------------------------------------------------------------


def _content(artifact: dict[str, Any]) -> Any:
    content = artifact.get("content")
    if isinstance(content, str) and (artifact.get("mediaType") or "").startswith("application/json"):
        try:
            return json.loads(content)
        except ValueError:
            return None
    return content


def _results(value: Any) -> list[dict[str, Any]]:
    """``previous`` as a list of results, newest first (a list of results is also accepted)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in reversed(value) if isinstance(item, dict)]
    return []


def find_input(payload: Any, artifact_type: str, keys: tuple[str, ...], _depth: int = 0) -> Any:
    """What a stage needs: ``payload`` itself if it has one of ``keys`` (direct input), else the content
    of the newest artifact of ``artifact_type`` in ``payload["previous"]``, else (recursively) in the
    ``previous`` of that result's user messages. ``None`` if nowhere.
    """
    if _depth > MAX_DEPTH or not isinstance(payload, dict):
        return None
    if any(key in payload for key in keys):
        return payload
    results = _results(payload.get("previous"))
    for result in results:
        for artifact in reversed(result.get("artifacts") or []):
            if isinstance(artifact, dict) and artifact.get("type") == artifact_type:
                content = _content(artifact)
                if content is not None:
                    return content
        if result.get("type") == artifact_type and "content" in result:  # an artifact given directly
            return _content(result)
        if any(key in result for key in keys):  # content given directly as "previous"
            return result
    for result in results:
        for message in result.get("messages") or []:
            if not isinstance(message, dict) or message.get("role") != "user":
                continue
            for part in message.get("parts") or []:
                if isinstance(part, dict) and part.get("type") == "data":
                    found = find_input(part.get("content"), artifact_type, keys, _depth + 1)
                    if found is not None:
                        return found
    return None


def topic_of(request: SkillRequest, *found: Any, from_text: bool = False) -> str:
    """The topic: the data part's ``topic``, else one carried by the input, else (``from_text``) the
    message text after its last colon, else ``""``."""
    topic = request.payload.get("topic")
    if isinstance(topic, str) and topic.strip():
        return topic.strip()
    for item in found:
        if isinstance(item, dict) and isinstance(item.get("topic"), str) and item["topic"].strip():
            return item["topic"].strip()
    text = request.first_text.strip() if from_text else ""  # follow-ups hold answers, not the topic
    if ":" in text:  # "Break the topic into research questions: solar power adoption"
        text = text.rsplit(":", 1)[1].strip()
    return text


def list_of_str(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, (str, int, float))] if isinstance(value, list) else []


#: What each stage's main artifact carries on when it has it: the chosen reading of an ambiguous topic,
#: and which corpus the documents came from (``{"kind", "name"}``, for the report's Method section).
CARRIED = {"reading": str, "collection": dict}


def carry_reading(content: dict[str, Any], source: Any) -> dict[str, Any]:
    """``content`` plus the ``reading`` and ``collection`` that ``source`` carries, if any (later stages need them)."""
    found = source if isinstance(source, dict) else {}
    extra = {k: found[k] for k, kind in CARRIED.items() if isinstance(found.get(k), kind) and found[k]}
    return {**content, **extra}


def stage_artifact(stage: str, artifact_id: str, content: Any, media_type: str = "application/json", **meta: Any) -> dict:
    """An artifact whose type is its id (``plan`` is of type ``research_plan``), metadata naming the stage."""
    artifact_type = "research_plan" if artifact_id == "plan" else artifact_id
    return make_artifact(artifact_id, artifact_type, content, media_type, {"stage": stage, **meta})
