"""Seven reference research agents that do real, deterministic work on a small shipped corpus.

topic_research -> crawl -> extract -> verify -> synthesize -> edit -> visualize. Each is the reference
agent (``agentvault_stack.agent``) serving one skill from :mod:`.stages`; the stage contract (which
artifacts each stage reads and writes) is documented in :mod:`.inputs`. Start them all with
``python -m agentvault_stack.agent.research`` or :func:`start_research_agents`::

    with start_research_agents() as agents:
        agents.urls["crawl"]  # http://127.0.0.1:<port>/a2a/

An OpenAI-compatible LLM can write the questions, report and edit (see :mod:`.llm`); without one,
everything is deterministic. A topic with several readings ("mercury", "jaguar") makes topic_research
ask a person which one is meant (see :mod:`.readings`; ``--no-questions`` turns that off).
Topics the shipped corpus does not cover are looked up in ~10,000 Wikipedia summaries read offline
from an optional package (``pip install "airflow-agentvault-stack[general-knowledge]"``, see :mod:`.general`).
"""

from agentvault_stack.agent.research.documents import Corpus, Document
from agentvault_stack.agent.research.inputs import ARTIFACT_TYPES, STAGE_NAMES, find_input
from agentvault_stack.agent.research.runner import ResearchAgents, research_agents, start_research_agents
from agentvault_stack.agent.research.stages import ResearchSkill, research_skill, research_skills

__all__ = [
    "ARTIFACT_TYPES",
    "STAGE_NAMES",
    "Corpus",
    "Document",
    "ResearchAgents",
    "ResearchSkill",
    "find_input",
    "research_agents",
    "research_skill",
    "research_skills",
    "start_research_agents",
]
