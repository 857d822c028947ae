"""The seven research skills on direct input, as a chain, and with a (mocked) LLM backend."""

from __future__ import annotations

import base64
import json
import logging
import re
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
import respx

from agentvault_stack.agent import AgentBehaviour
from agentvault_stack.agent.contract import SkillInputError, SkillRequest, SkillResult
from agentvault_stack.agent.research import STAGE_NAMES, Corpus, Document, find_input, general, llm, research_skills
from agentvault_stack.agent.research.chart import render_charts, wrap_label
from agentvault_stack.agent.research.claims import extract_claims, verify_claims
from agentvault_stack.agent.research.editing import edit_report, title_case
from agentvault_stack.agent.research.planning import plan_research
from agentvault_stack.agent.research.report import split_references
from agentvault_stack.agent.research.text import numbers, sentences
from agentvault_stack.agent.skills import ECHO_SKILL, get_skill

SVG_NS = "{http://www.w3.org/2000/svg}"
TOPIC = "solar power adoption"


@pytest.fixture(autouse=True)
def no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic unless a test configures the LLM itself."""
    for name in (llm.ENV_BASE_URL, llm.ENV_MODEL, llm.ENV_API_KEY, llm.ENV_TIMEOUT):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def skills() -> dict[str, Any]:
    return research_skills()


def run(skill: Any, data: dict[str, Any] | None = None, text: str = "do the stage") -> SkillResult:
    return skill.run(SkillRequest.of(text, data))


def as_result(result: SkillResult, data: dict[str, Any]) -> dict[str, Any]:
    """The result dict the pipeline passes on: the stage's task as the provider reports it."""
    return {
        "state": "COMPLETED",
        "text": result.text,
        "messages": [
            {"role": "user", "parts": [{"type": "text", "content": "do it"}, {"type": "data", "content": data}]},
            {"role": "assistant", "parts": [{"type": "text", "content": result.text}]},
        ],
        "artifacts": result.artifacts,
    }


def run_chain(skills: dict[str, Any], topic: str = TOPIC) -> dict[str, SkillResult]:
    results: dict[str, SkillResult] = {}
    previous = None
    for stage in STAGE_NAMES:
        data: dict[str, Any] = {"topic": topic}
        if previous is not None:
            data["previous"] = previous
        results[stage] = run(skills[stage], data)
        previous = as_result(results[stage], data)
    return results


def artifact(result: SkillResult, artifact_type: str) -> dict[str, Any]:
    matches = [a for a in result.artifacts if a["type"] == artifact_type]
    assert matches, f"no {artifact_type} artifact in {[a['type'] for a in result.artifacts]}"
    return matches[-1]


def check_citations(markdown: str) -> tuple[set[int], list[int]]:
    """Every [n] in the body has reference n, and every reference is cited; references are 1..N."""
    body, refs = split_references(markdown)
    assert refs.startswith("## References"), markdown
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    listed = [int(n) for n in re.findall(r"^(\d+)\. ", refs, re.MULTILINE)]
    assert listed == list(range(1, len(listed) + 1))
    assert cited == set(listed)
    return cited, listed


# -- skill plumbing -------------------------------------------------------------------------


def test_echo_skill_keeps_the_reference_answer() -> None:
    request = SkillRequest(texts=["a", "b"], data=[{"k": 1}], behaviour=AgentBehaviour(artifact_count=2))
    result = ECHO_SKILL.run(request)
    assert result.text == "Reference answer: a b"
    assert [a["id"] for a in result.artifacts] == ["result", "result-2"]
    assert result.artifacts[0]["content"] == {
        "answer": "Reference answer: a b", "echo": {"text": ["a", "b"], "data": [{"k": 1}]}, "index": 1,
    }


def test_get_skill_by_name() -> None:
    assert get_skill("echo") is ECHO_SKILL
    assert get_skill("crawl").id == "research-crawl"
    assert get_skill("research/topic_research").id == "research-topic-research"
    assert get_skill("agentvault_stack.agent.skills:ECHO_SKILL") is ECHO_SKILL
    with pytest.raises(ValueError, match="unknown skill"):
        get_skill("nope")


def test_skill_request_from_messages_reads_user_parts_only() -> None:
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "t1"}, {"type": "data", "content": {"a": 1}}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "ignored"}]},
        {"role": "user", "parts": [{"type": "data", "content": {"a": 2, "b": 3}}]},
    ]
    request = SkillRequest.from_messages(messages, AgentBehaviour())
    assert request.texts == ["t1"]
    assert request.payload == {"a": 2, "b": 3}


# -- the stages on direct input -------------------------------------------------------------


def test_topic_research(skills: dict[str, Any]) -> None:
    result = run(skills["topic_research"], {"topic": TOPIC})
    plan = artifact(result, "research_plan")
    assert plan["id"] == "plan" and plan["mediaType"] == "application/json" and plan["url"] is None
    content = plan["content"]
    assert content["topic"] == TOPIC and content["corpus_topic"] == TOPIC
    assert 4 <= len(content["questions"]) <= 6
    assert all(q.endswith("?") for q in content["questions"])
    assert "solar" in content["keywords"] and "grid connection" in content["keywords"]
    assert plan["metadata"] == {"stage": "topic_research", "generator": "deterministic"}
    assert result.text.startswith(f"Research plan for {TOPIC}: 1. ")


def test_topic_research_takes_the_topic_from_the_text(skills: dict[str, Any]) -> None:
    result = run(skills["topic_research"], None, text="Break the topic into research questions: coral reef bleaching")
    assert artifact(result, "research_plan")["content"]["corpus_topic"] == "coral reef bleaching"
    with pytest.raises(SkillInputError):
        run(skills["topic_research"], None, text="")


def test_crawl_ranks_the_topic_documents_first(skills: dict[str, Any]) -> None:
    result = run(skills["crawl"], {"topic": "battery recycling", "keywords": ["batteries", "black mass", "recycling"]})
    docs = artifact(result, "documents")["content"]["documents"]
    assert docs and all(d["id"].startswith("battery-") for d in docs)
    assert [d["score"] for d in docs] == sorted((d["score"] for d in docs), reverse=True)
    assert {"id", "title", "source", "date", "score", "text"} <= set(docs[0])
    limited = run(skills["crawl"], {"topic": "battery recycling", "keywords": ["batteries"], "top_n": 2})
    assert len(artifact(limited, "documents")["content"]["documents"]) == 2


def test_crawl_without_a_plan_plans_from_the_topic(skills: dict[str, Any]) -> None:
    docs = artifact(run(skills["crawl"], {"topic": "urban heat islands"}), "documents")["content"]["documents"]
    assert {d["id"] for d in docs} == {"heat-01", "heat-02", "heat-03", "heat-04"}


def test_extract_claims_with_figures(skills: dict[str, Any]) -> None:
    doc = {
        "id": "d1",
        "title": "T",
        "source": "S",
        "date": "2024-01-01",
        "text": "Intro without figures. Sales rose 12% in 2023.\n\nThe plant employs 420 people. No numbers here.",
    }
    result = run(skills["extract"], {"documents": [doc], "keywords": ["sales", "plant"]})
    claims = artifact(result, "claims")["content"]["claims"]
    assert [(c["claim"], c["sentence_index"]) for c in claims] == [
        ("Sales rose 12% in 2023.", 1),
        ("The plant employs 420 people.", 2),
    ]
    assert claims[0] | {"keywords": None} == claims[0] | {
        "id": "d1#1", "claim": "Sales rose 12% in 2023.", "source_id": "d1", "source": "S", "title": "T",
        "date": "2024-01-01", "sentence_index": 1, "numbers": ["12%"], "years": [2023], "keywords": None,
    }
    assert claims[0]["keywords"] == ["sales"]
    with pytest.raises(SkillInputError, match="extract needs documents"):
        run(skills["extract"], {"topic": "x"})


def test_text_helpers() -> None:
    text = "Valdora collected 18,400 t (18400 t) in 2023, up 24 percent, at $2.10; 3 million more, 4.2 °C."
    quantities, years = numbers(text)
    assert [str(q) for q in quantities] == ["18,400", "24%", "2.1", "3,000,000", "4.2 °C"]
    assert years == [2023]
    assert sentences("It cost $2.10 per watt. Then it fell.\n\nNew paragraph") == [
        "It cost $2.10 per watt.", "Then it fell.", "New paragraph",
    ]
    assert title_case("research report: the state of single-source claims") == (
        "Research Report: The State of Single-Source Claims"
    )


# A crafted mini corpus: one corroborated figure, one contested, one per-year pair that must not merge.
MINI = [
    Document("harbour-a", "Harbour Review", "Harbour Weekly", "2024-01-10", "harbour",
             "The port of Lenby handled 4,500 ships in 2023. Average rents in Lenby rose 8% in 2023. "
             "The old harbour bridge is 1.2 kilometres long."),
    Document("harbour-b", "Port Statistics", "Lenby Port Office", "2024-02-01", "harbour",
             "In 2023 the port of Lenby handled 4500 ships, a record. Average rents in Lenby rose 5% in 2021."),
    Document("harbour-c", "Housing Report", "Lenby Housing Trust", "2024-03-05", "harbour",
             "According to our survey, average rents in Lenby rose 12% in 2023. The trust owns 310 flats."),
]


def test_verify_labels_on_a_crafted_mini_corpus() -> None:
    claims = extract_claims(MINI)
    result = verify_claims(claims)
    by_text = {f["claim"]: f for f in result["verified"]}
    ships = by_text["The port of Lenby handled 4,500 ships in 2023."]
    assert ships["label"] == "corroborated" and ships["sources"] == ["Harbour Weekly", "Lenby Port Office"]
    rents = by_text["Average rents in Lenby rose 8% in 2023."]
    assert rents["label"] == "contested"
    assert [p["numbers"] for p in rents["positions"]] == [["8%"], ["12%"]]
    assert rents["sources"] == ["Harbour Weekly", "Lenby Housing Trust"]
    assert by_text["Average rents in Lenby rose 5% in 2021."]["label"] == "single-source"  # other year
    assert by_text["The old harbour bridge is 1.2 kilometres long."]["label"] == "single-source"
    assert by_text["The trust owns 310 flats."]["label"] == "single-source"
    assert result["summary"] == {"corroborated": 1, "contested": 1, "single-source": 3, "total": 5}
    assert result["by_source"]["Harbour Weekly"] == {"corroborated": 1, "contested": 1, "single-source": 1}


def test_mini_corpus_through_the_skills() -> None:
    skills = research_skills(Corpus(MINI))
    docs = run(skills["crawl"], {"topic": "Lenby harbour rents", "keywords": ["rents", "port", "housing"]})
    assert {d["id"] for d in artifact(docs, "documents")["content"]["documents"]} == {d.id for d in MINI}
    claims = run(skills["extract"], {"previous": as_result(docs, {})})
    verified = run(skills["verify"], {"previous": as_result(claims, {})})
    assert artifact(verified, "verification")["content"]["summary"]["total"] == 5


def test_verify_accepts_bare_claims(skills: dict[str, Any]) -> None:
    claims = [
        {"claim": "Wind supplied 30% of power in 2022.", "source": "A"},
        {"claim": "Wind supplied 30 percent of power in 2022.", "source": "B"},
        {"claim": "Wind supplied 41% of power in 2023.", "source": "B"},
    ]
    content = artifact(run(skills["verify"], {"claims": claims}), "verification")["content"]
    assert [f["label"] for f in content["verified"]] == ["corroborated", "single-source"]


def test_synthesize_and_edit_on_direct_input(skills: dict[str, Any]) -> None:
    claims = extract_claims(MINI)
    verification = {"topic": "Lenby", "questions": ["How busy is the port?"], **verify_claims(claims)}
    report = artifact(run(skills["synthesize"], verification), "report")
    assert report["mediaType"] == "text/markdown" and report["type"] == "report"
    markdown = report["content"]
    assert markdown.startswith("# Research report: Lenby\n")
    cited, listed = check_citations(markdown)
    assert len(listed) == 3 and report["metadata"]["references"] == 3
    assert "## Findings" in markdown and "**Sources disagree (8% vs 12%).**" in markdown

    edited = run(skills["edit"], {"topic": "Lenby", "report": markdown, "verified": verification["verified"],
                                  "summary": verification["summary"]})
    edited_md = artifact(edited, "report")["content"]
    assert edited_md.startswith("# Research Report: Lenby\n\n**Summary.** This report on Lenby checks 5 findings")
    assert "## Findings" in edited_md and "4,500 ships" in edited_md
    check_citations(edited_md)
    words = re.findall(r"[A-Za-z0-9][\w'%.,°$-]*", edited_md)
    assert artifact(edited, "report")["metadata"]["word_count"] == len(words)
    assert any("Title-cased" in c for c in artifact(edited, "changelog")["content"]["changes"])


def test_edit_passes() -> None:
    report = (
        "# research report: tides\n\n"
        "## what we found\n\n"
        "- Tides rose 24 percent over 18400 days at the pier [1]. "
        "Tides rose 24 percent over 18400 days at the pier [2].\n"
        "- The water was 4.2°C warmer than last year at the pier [2].\n"
        "- Tides rose 24% over 18400 days at the pier [3].\n"
        "- The pier was built in 1789 (1775-1783 plans), for 12500 ships.\n\n"
        "## References\n\n1. A. *S1*, 2024.\n2. B. *S2*, 2024.\n3. C. *S3*, 12345.\n"
    )
    edited, changes = edit_report(report)
    assert edited.splitlines()[0] == "# Research Report: Tides"
    assert "## What We Found" in edited
    assert edited.count("Tides rose 24% over 18400 days at the pier") == 1
    assert "Tides rose 24% over 18400 days at the pier [1][2][3]." in edited  # citations kept
    assert "built in 1789 (1775-1783 plans), for 12500 ships." in edited  # digits as the source wrote them
    assert "1,789" not in edited and "12,500" not in edited
    assert "4.2 °C warmer" in edited
    assert "3. C. *S3*, 12345." in edited  # references left alone
    assert edited.split("\n")[2].startswith("**Summary.** This report checks 0 findings")
    check_citations(edited)
    assert [c.split(" ")[0] for c in changes] == ["Title-cased", "Made", "Removed", "Added", "Word"]
    assert edit_report(edited)[0] == edited  # idempotent


def svg_texts(svg: str) -> list[str]:
    """Every piece of text the SVG shows (matplotlib writes text as <text>, with <tspan>s when multi-line)."""
    root = ET.fromstring(svg)
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG_NS}text") if "".join(t.itertext()).strip()]


def test_visualize_draws_svg_and_png_with_whole_labels(skills: dict[str, Any]) -> None:
    verification = {"topic": "Lenby <harbour> & co", **verify_claims(extract_claims(MINI))}
    result = run(skills["visualize"], verification)
    png, chart = result.artifacts
    assert chart["mediaType"] == "image/svg+xml" and chart["id"] == "chart" and chart["type"] == "chart"
    assert png["mediaType"] == "image/png" and png["id"] == "chart-png" and png["type"] == "chart"
    assert base64.b64decode(png["content"]).startswith(b"\x89PNG\r\n\x1a\n")
    root = ET.fromstring(chart["content"])
    assert root.tag == f"{SVG_NS}svg"
    assert root.find(f"{SVG_NS}title").text == "Verification of claims: Lenby <harbour> & co"
    meta = chart["metadata"]
    assert meta["groups"] == ["Harbour Weekly", "Lenby Housing Trust", "Lenby Port Office"]
    cells = sum(1 for counts in verification["by_source"].values() for v in counts.values() if v)
    assert meta["segments"] == cells < 9  # no empty slot for a zero count
    texts = svg_texts(chart["content"])
    for name in meta["groups"]:
        assert name in texts  # short names stand whole beside their bars
    by_question = artifact(run(skills["visualize"], {**verification, "group_by": "question", "questions": ["q?"],
                                                     "by_source": None}), "chart")
    ET.fromstring(by_question["content"])
    empty = artifact(run(skills["visualize"], {"verified": []}), "chart")
    assert "No findings to chart" in svg_texts(empty["content"])


def test_chart_labels_wrap_at_word_boundaries_only() -> None:
    names = ["Wikipedia: Declaration of the Rights of Man and of the Citizen", "Wikipedia: Photosynthesis",
             "Wikipedia: French Revolutionary Wars", "Wikipedia: Cyanobacteria"]
    verification = {"topic": "Nordvik", "summary": {"single-source": 4, "total": 4},
                    "by_source": {n: {"single-source": 1} for n in names}}
    svg, png, meta = render_charts(verification)
    texts = svg_texts(svg)
    for name, lines in zip(meta["groups"], meta["label_lines"], strict=True):
        assert " ".join(lines) == name.removeprefix("Wikipedia: ")  # the shared prefix is said once, on the axis
        for line in lines:
            assert line in texts or any(line in t.split("\n") for t in texts)
    words = {w for n in names for w in re.findall(r"[A-Za-z]+", n)}
    shown = {w for t in texts for w in re.findall(r"[A-Za-z]+", t)}
    broken = {w for w in shown - words if any(w != x and (x.startswith(w) or x.endswith(w)) for x in words)}
    assert not broken, broken  # no word cut in two ("C yanobacteria", "P hotosynthesi s")
    assert "Wikipedia articles" in texts and meta["segments"] == 4
    assert wrap_label("Photosynthesis " * 3, 8) == ["Photosynthesis"] * 3  # a long word is never split


# -- the chain ------------------------------------------------------------------------------


def test_full_chain_in_order(skills: dict[str, Any]) -> None:
    results = run_chain(skills)
    verification = artifact(results["verify"], "verification")["content"]
    assert verification["summary"] == {"corroborated": 3, "contested": 2, "single-source": 8, "total": 13}
    rooftop = [f for f in verification["verified"] if "ooftop solar installations" in f["claim"]]
    assert [(f["label"], len(f["sources"])) for f in rooftop] == [("corroborated", 3)]
    share = [f for f in verification["verified"] if "of Valdora's electricity in 2023" in f["claim"]]
    assert [f["label"] for f in share] == ["contested"]
    assert sorted(p["numbers"][0] for p in share[0]["positions"]) == ["14%", "18%"]

    report = artifact(results["edit"], "report")["content"]
    assert report.startswith("# Research Report: Solar Power Adoption\n\n**Summary.**")
    for heading in ("## Research Questions", "## Findings", "### Solar Power Adoption in Brief", "## Method",
                    "## References"):
        assert heading in report
    cited, listed = check_citations(report)
    assert len(listed) == 4
    # the edit stage passes the verification through, so visualize needs only its predecessor
    assert artifact(results["edit"], "verification")["content"]["summary"] == verification["summary"]
    assert [a["type"] for a in results["edit"].artifacts] == ["changelog", "verification", "report"]
    svg = ET.fromstring(artifact(results["visualize"], "chart")["content"])
    assert svg.tag == f"{SVG_NS}svg"
    assert results["visualize"].text == (
        "Chart of 13 findings on solar power adoption across 4 sources: 3 corroborated, 2 contested, 8 single-source."
    )


def test_chain_is_deterministic(skills: dict[str, Any]) -> None:
    first, second = run_chain(skills, "coral reef bleaching"), run_chain(research_skills(), "coral reef bleaching")
    for stage in STAGE_NAMES:
        assert json.dumps(first[stage].artifacts, sort_keys=True) == json.dumps(second[stage].artifacts, sort_keys=True)
        assert first[stage].text == second[stage].text
    report = artifact(first["edit"], "report")["content"]
    assert "61%" in report  # unit style made consistent by the editor
    verification = artifact(first["verify"], "verification")["content"]
    sources = " ".join(e["claim"] for f in verification["verified"] for e in f["evidence"])
    body = split_references(report)[0]
    figures = re.findall(r"\d[\d,.]*\d|\d", re.sub(r"\[\d+\]", "", body.split("\n## Method")[0]))
    summary_counts = {str(n) for n in verification["summary"].values()}
    assert all(f in sources or f in summary_counts for f in figures), [f for f in figures if f not in sources]


@pytest.mark.parametrize("topic", ["urban heat islands", "battery recycling"])
def test_chain_on_other_topics(skills: dict[str, Any], topic: str) -> None:
    results = run_chain(skills, topic)
    summary = artifact(results["verify"], "verification")["content"]["summary"]
    assert summary["corroborated"] >= 2 and summary["contested"] >= 1 and summary["single-source"] >= 1
    check_citations(artifact(results["edit"], "report")["content"])


def test_chain_on_an_unknown_topic_stops_at_the_crawl(skills: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty report must never pass for a result: the crawl fails and says what the corpus covers.

    Without the general-knowledge corpus (hidden here), an everyday topic is not covered either."""
    monkeypatch.setattr(general, "data_file", lambda: None)
    with pytest.raises(SkillInputError, match="no document in the research corpus is about 'quantum computing'"):
        run_chain(skills, "quantum computing")


def test_inputs_are_found_further_back_and_in_odd_shapes(skills: dict[str, Any]) -> None:
    results = run_chain(skills)
    synth_data = {"topic": TOPIC, "previous": as_result(results["verify"], {"topic": TOPIC})}
    synth_result = as_result(results["synthesize"], synth_data)
    # an edit result without the passed-through verification: visualize digs it out of the nesting
    edit_result = as_result(
        SkillResult(results["edit"].text, [artifact(results["edit"], "report")]),
        {"topic": TOPIC, "previous": {**synth_result, "artifacts": [artifact(results["synthesize"], "report")]}},
    )
    found = find_input({"previous": edit_result}, "verification", ("verified",))
    assert found["summary"]["total"] == 13
    chart = run(skills["visualize"], {"topic": TOPIC, "previous": edit_result})
    assert artifact(chart, "chart")["metadata"]["totals"]["corroborated"] == 3
    # JSON content serialised as a string, and previous given as a list of results
    as_string = dict(artifact(results["verify"], "verification"))
    as_string["content"] = json.dumps(as_string["content"])
    report = run(skills["synthesize"], {"previous": [{"artifacts": [as_string]}]})
    assert artifact(report, "report")["content"] == artifact(results["synthesize"], "report")["content"]
    # crawl documents whose text was dropped on the way are re-read from the corpus
    docs = artifact(results["crawl"], "documents")["content"]
    slim = {**docs, "documents": [{k: v for k, v in d.items() if k != "text"} for d in docs["documents"]]}
    assert artifact(run(skills["extract"], slim), "claims")["content"]["claims"] == (
        artifact(results["extract"], "claims")["content"]["claims"]
    )


def test_plan_is_corpus_driven() -> None:
    plan = plan_research("lithium battery recycling", Corpus.load())
    assert plan["corpus_topic"] == "battery recycling"
    assert plan["keywords"][:3] == ["lithium", "battery", "recycling"]
    assert "black mass" in plan["keywords"]


# -- optional LLM backend (mocked with respx; no network) -----------------------------------

LLM_BASE = "http://llm.invalid:11434"


def completion(text: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


@pytest.fixture
def llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(llm.ENV_BASE_URL, LLM_BASE)
    monkeypatch.setenv(llm.ENV_MODEL, "tiny-model")
    monkeypatch.setenv(llm.ENV_API_KEY, "sk-test")


@respx.mock(assert_all_mocked=True)
def test_llm_writes_the_questions(skills: dict[str, Any], llm_env: None, respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(f"{LLM_BASE}/v1/chat/completions").mock(
        return_value=completion("<think>hmm</think>1. How fast are rooftops growing?\n2. What does a system cost?\n"
                                "- Why are grid waits long?\n* Who buys batteries?")
    )
    result = run(skills["topic_research"], {"topic": TOPIC})
    plan = artifact(result, "research_plan")
    assert plan["content"]["questions"] == [
        "How fast are rooftops growing?", "What does a system cost?", "Why are grid waits long?", "Who buys batteries?",
    ]
    assert plan["metadata"]["generator"] == "llm:tiny-model"
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer sk-test"
    body = json.loads(request.content)
    assert body["model"] == "tiny-model" and body["stream"] is False and body["messages"][0]["role"] == "system"


@respx.mock(assert_all_mocked=True)
def test_llm_writes_and_edits_the_report(
    skills: dict[str, Any], llm_env: None, monkeypatch: pytest.MonkeyPatch, respx_mock: respx.MockRouter
) -> None:
    monkeypatch.setenv(llm.ENV_BASE_URL, LLM_BASE + "/v1/")  # a base that already ends in /v1 is not doubled
    verification = {"topic": "Lenby", **verify_claims(extract_claims(MINI))}
    respx_mock.post(f"{LLM_BASE}/v1/chat/completions").mock(
        return_value=completion("```markdown\n# Lenby in figures\n\n## findings\n\nThe port handled 4500 ships [1][2]. "
                                "Rents rose 8 percent or 12 percent [1][3].\n\n## References\n\n1. made up\n```")
    )
    report = artifact(run(skills["synthesize"], verification), "report")
    assert report["metadata"]["generator"] == "llm:tiny-model"
    assert report["content"].startswith("# Lenby in figures\n")
    assert "made up" not in report["content"]  # the model's references are replaced by the real ones
    check_citations(report["content"])
    prompt = json.loads(respx_mock.calls.last.request.content)["messages"][1]["content"]
    assert "- (contested) **Sources disagree (8% vs 12%).** Average rents in Lenby rose 8% in 2023 [1]." in prompt
    assert "[3] Housing Report (Lenby Housing Trust, 2024-03-05)" in prompt

    respx_mock.post(f"{LLM_BASE}/v1/chat/completions").mock(
        return_value=completion("# Lenby in figures\n\n## findings\n\nThe port handled 4500 ships in one year [1][2]. "
                                "Rents rose 8 percent or 12 percent [1][3].")
    )
    edited = run(skills["edit"], {"report": report["content"], **verification})
    text = artifact(edited, "report")["content"]
    assert "## Findings" in text and "4500 ships in one year" in text and "8% or 12%" in text
    check_citations(text)  # the references section was restored
    assert artifact(edited, "changelog")["content"]["changes"][0] == "Edited for clarity by llm:tiny-model."


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500, text="boom"), httpx.ConnectError("refused"), completion(""), httpx.Response(200, json={})],
    ids=["http-500", "connect-error", "empty-answer", "bad-json"],
)
def test_llm_failure_falls_back_with_a_warning(
    skills: dict[str, Any], llm_env: None, caplog: pytest.LogCaptureFixture, failure: Any
) -> None:
    verification = {"topic": "Lenby", **verify_claims(extract_claims(MINI))}
    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.post(f"{LLM_BASE}/v1/chat/completions")
        route.mock(side_effect=failure) if isinstance(failure, Exception) else route.mock(return_value=failure)
        with caplog.at_level(logging.WARNING, logger="agentvault_stack.agent.research"):
            with_llm = run(skills["synthesize"], verification)
    assert route.called
    assert "research stage synthesize: LLM at http://llm.invalid:11434/v1/chat/completions failed" in caplog.text
    assert artifact(with_llm, "report")["metadata"]["generator"] == "deterministic"


def test_llm_fallback_output_equals_the_deterministic_one(
    skills: dict[str, Any], llm_env: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        mock.post(f"{LLM_BASE}/v1/chat/completions").mock(return_value=completion("no questions here"))
        with caplog.at_level(logging.WARNING, logger="agentvault_stack.agent.research"):
            fallback = run(skills["topic_research"], {"topic": TOPIC})
    assert "unusable" in caplog.text
    monkeypatch.delenv(llm.ENV_BASE_URL)
    assert fallback.artifacts == run(skills["topic_research"], {"topic": TOPIC}).artifacts


def test_a_topic_nothing_covers_fails_the_crawl_with_what_the_corpus_covers(skills: dict[str, Any]) -> None:
    with pytest.raises(SkillInputError) as info:
        run(skills["crawl"], {"topic": "microplastics in drinking water"})
    message = str(info.value)
    assert "microplastics in drinking water" in message and "coral reef bleaching" in message
    assert "AGENTVAULT_RESEARCH_CORPUS" in message


def test_a_folder_of_text_and_html_files_is_a_corpus(tmp_path) -> None:
    (tmp_path / "field-study.html").write_text(
        "<html><head><title>Heat pump field study</title><style>p {color: red}</style></head><body>"
        "<h1>Heat pumps in Nordvik</h1><p>In 2024 the study measured 312 heat pumps in Nordvik homes.</p>"
        "<p>Their seasonal efficiency was 3.1 in 2024.</p><script>track()</script></body></html>")
    (tmp_path / "installers.txt").write_text(
        "Heat pump installer survey\n\nInstallers in Nordvik fitted 312 heat pumps in 2024.\n"
        "The seasonal efficiency of heat pumps was 3.1 in 2024.\n")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4 not read")
    corpus = Corpus.load(tmp_path)
    by_id = {d.id: d for d in corpus.documents}
    assert set(by_id) == {"field-study", "installers"}
    assert by_id["field-study"].title == "Heat pump field study" and "track()" not in by_id["field-study"].text
    assert "color" not in by_id["field-study"].text and by_id["field-study"].source == "field-study.html"
    assert by_id["installers"].title == "Heat pump installer survey"
    chain = run_chain(research_skills(corpus), topic="heat pumps in Nordvik")
    verified = artifact(chain["verify"], "verification")["content"]
    assert verified["summary"]["corroborated"] >= 1  # the two files agree on 312 heat pumps / 3.1
    assert "Heat pump installer survey" in artifact(chain["edit"], "report")["content"]
