"""The seven research skills: each stage's input found, its work done, its artifacts written.

The stage contract (which artifacts each stage reads and writes, and how it finds them) is
:mod:`.inputs`; the work of each stage is a pure function elsewhere (:mod:`.planning`,
:mod:`.claims`, :mod:`.report`, :mod:`.editing`, :mod:`.chart`). What the skills add around it:

A topic with several readings ("mercury", see :mod:`.readings`) makes topic_research ask a person
which one is meant (INPUT_REQUIRED, the readings as options) unless the data part names a ``reading``;
the plan then carries ``reading``, every later stage's main artifact passes it on, crawl searches that
reading's documents only, and the report says ``Reading chosen: <reading>``.

A topic the shipped corpus has no document on is looked up in the general-knowledge corpus (Wikipedia
summaries, see :mod:`.general`) when its package is installed: the plan then carries ``corpus:
general-knowledge``, documents carry ``url`` and ``attribution``, extract takes every sentence stating
a figure, date or named fact (each article counts as a source of its own; from an article not itself
on the topic, only the sentences naming it, see :mod:`.relevance`), and the report cites the article
URLs and ends with the attribution line. Crawl says which corpus it searched (``collection``), and the
report's Method section names it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from agentvault_stack.agent.contract import Skill, SkillInputError, SkillRequest, SkillResult
from agentvault_stack.agent.research import general, llm
from agentvault_stack.agent.research.chart import render_charts
from agentvault_stack.agent.research.claims import extract_claims, tally, verify_claims
from agentvault_stack.agent.research.documents import Corpus, Document
from agentvault_stack.agent.research.editing import edit_report, word_count
from agentvault_stack.agent.research.inputs import (
    STAGE_DESCRIPTIONS,
    STAGE_NAMES,
    carry_reading,
    find_input,
    list_of_str,
    stage_artifact,
    topic_of,
)
from agentvault_stack.agent.research.planning import (
    DEFAULT_TOP_N,
    collection,
    crawl_documents,
    general_plan,
    nothing_covers,
    parse_questions,
    plan_research,
)
from agentvault_stack.agent.research.readings import Reading, Readings, asking_enabled, question_for, readings_of
from agentvault_stack.agent.research.report import (
    LABELS,
    cite_findings,
    counted,
    finding_line,
    split_references,
    with_attribution,
    with_reading,
    with_references,
    write_report,
)

# -- the skills -----------------------------------------------------------------------------


def _on(topic: str) -> str:
    return f" on {topic}" if topic else ""


def _summary_text(summary: dict[str, Any]) -> str:
    return ", ".join(f"{summary.get(label, 0)} {label}" for label in LABELS)


class ResearchSkill(Skill):
    """One stage of the research pipeline, on a corpus (default: the shipped one)."""

    blocking = True

    def __init__(self, stage: str, corpus: Corpus | None = None, *, ask: bool | None = None) -> None:
        if stage not in STAGE_NAMES:
            raise ValueError(f"unknown research stage {stage!r}; known: {', '.join(STAGE_NAMES)}")
        self.stage = stage
        self._corpus = corpus
        self._ask = ask  # None: $AGENTVAULT_RESEARCH_QUESTIONS decides, at each task
        self.id = f"research-{stage.replace('_', '-')}"
        self.name = f"Research: {stage.replace('_', ' ')}"
        self.description = STAGE_DESCRIPTIONS[stage]

    @property
    def corpus(self) -> Corpus:
        return self._corpus or Corpus.load()

    @property
    def readings(self) -> Readings:
        return readings_of(self.corpus)

    def _reading(self, request: SkillRequest, topic: str) -> tuple[Reading | None, str | None]:
        """The reading of an ambiguous ``topic``: named in the data, answered, or the default when
        asking is off. ``(None, question)`` when a person must be asked first; ``(None, None)`` for a
        clear topic. An answer naming no reading is unusable input."""
        readings = self.readings.ambiguous(topic)
        if not readings:
            return None, None
        question = question_for(readings[0].word)
        named = request.payload.get("reading")
        answer = named if isinstance(named, str) and named.strip() else request.answer_to(question)
        if answer is None:
            return (None, question) if asking_enabled(self._ask) else (readings[0], None)
        chosen = Readings.choose(readings, answer)
        if chosen is None:
            choices = ", ".join(r.label for r in readings)
            raise SkillInputError(f"{answer!r} is not a reading of {readings[0].word!r}; choose one of: {choices}")
        return chosen, None

    def run(self, request: SkillRequest) -> SkillResult:
        handler: Callable[[SkillRequest], SkillResult] = getattr(self, f"_{self.stage}")
        return handler(request)

    # 1
    def _topic_research(self, request: SkillRequest) -> SkillResult:
        topic = topic_of(request, from_text=True)
        if not topic:
            raise SkillInputError("topic_research needs a topic: a data part {'topic': ...} or the message text")
        reading, question = self._reading(request, topic)
        if question is not None:
            return SkillResult.ask(question, [r.label for r in self.readings.ambiguous(topic)])
        if reading is None:
            plan = plan_research(topic, self.corpus)
            uncovered = plan["corpus_topic"] is None and not crawl_documents(
                self.corpus, topic, list_of_str(plan.get("keywords")), top_n=1)
            knowledge = general.load() if uncovered else None  # the corpus has nothing on it: general knowledge
            plan = (general_plan(topic, knowledge) if knowledge is not None else None) or plan
        else:
            plan = {**plan_research(topic, self.readings.corpus, corpus_topic=reading.topic), "reading": reading.label}
        about = f"{topic} ({reading.label})" if reading else topic
        answer, generator = llm.ask(
            "topic_research",
            "You plan research. Answer with 4 to 6 research questions, one per line, nothing else.",
            f"Topic: {about}\nUseful vocabulary: {', '.join(plan['keywords'])}\n"
            "Write 4 to 6 specific sub-questions that documents could answer with figures.",
            max_tokens=400,
        )
        if answer is not None:
            questions = parse_questions(answer)
            if len(questions) >= 3:
                plan["questions"] = questions
            else:
                _, generator = llm.rejected("topic_research", f"{len(questions)} questions parsed")
        numbered = " ".join(f"{i}. {q}" for i, q in enumerate(plan["questions"], 1))
        text = f"Research plan for {topic}: {numbered} Keywords: {', '.join(plan['keywords'])}."
        if reading is not None:
            how = "" if request.answers or request.payload.get("reading") else " (asking is off: the first reading)"
            text = f"Reading chosen: {reading.label}{how}. {text}"
        return SkillResult(text, [stage_artifact("topic_research", "plan", plan, generator=generator)])

    # 2
    def _crawl(self, request: SkillRequest) -> SkillResult:
        payload = request.payload
        plan = find_input(payload, "research_plan", ("keywords",))
        topic = topic_of(request, plan, from_text=True)
        if not isinstance(plan, dict):
            if not topic:
                raise SkillInputError("crawl needs a research plan (previous: the topic_research result) or a topic")
            plan = plan_research(topic, self.corpus)
        keywords = list_of_str(plan.get("keywords"))
        top_n = payload.get("top_n", DEFAULT_TOP_N)
        top_n = top_n if isinstance(top_n, int) and not isinstance(top_n, bool) else DEFAULT_TOP_N
        knowledge = None
        if plan.get("reading"):  # one reading of an ambiguous topic: that reading's documents only
            documents = crawl_documents(self.readings.corpus, topic, keywords, top_n=top_n,
                                        only_topic=str(plan.get("corpus_topic")))
        elif plan.get("corpus") == general.CORPUS_NAME:  # the plan's keywords are Wikipedia's, not the corpus's
            documents = []
        else:
            documents = crawl_documents(self.corpus, topic, keywords, top_n=top_n)
        if not documents and not plan.get("reading"):  # nothing in the shipped corpus: general knowledge
            knowledge = general.load()
            limit = top_n if "top_n" in payload else general.DEFAULT_LIMIT
            documents = knowledge.documents(topic, limit) if knowledge is not None else []
            if not documents:
                raise SkillInputError(nothing_covers(topic, self.corpus, knowledge))
        if not documents:
            raise SkillInputError(nothing_covers(topic, self.corpus))
        searched = None if knowledge is not None else self.readings.corpus if plan.get("reading") else self.corpus
        content = carry_reading({
            "topic": topic,
            "questions": list_of_str(plan.get("questions")),
            "keywords": keywords,
            "documents": documents,
            "collection": collection(searched),
        }, plan)
        listed = "; ".join(f"{d['title']} ({d['source']}, score {d['score']})" for d in documents)
        shelf = f" in the {general.CORPUS_NAME} corpus" if knowledge is not None else ""
        text = f"Found {len(documents)} relevant documents{shelf} on {topic}" + (f": {listed}." if documents else ".")
        return SkillResult(text, [stage_artifact("crawl", "documents", content, count=len(documents))])

    # 3
    def _extract(self, request: SkillRequest) -> SkillResult:
        found = find_input(request.payload, "documents", ("documents",))
        if not isinstance(found, dict) or not isinstance(found.get("documents"), list):
            raise SkillInputError("extract needs documents: previous = the crawl result, or {'documents': [...]}")
        documents: list[Document] = []
        listed: list[dict[str, Any]] = []
        for index, raw in enumerate(found["documents"]):
            if not isinstance(raw, dict):
                continue
            doc_id = str(raw.get("id"))
            known = self.corpus.by_id.get(doc_id) or self.readings.corpus.by_id.get(doc_id)
            if known is None and not raw.get("text") and doc_id.startswith(general.ID_PREFIX):
                knowledge = general.load()
                article = knowledge.by_id.get(doc_id) if knowledge is not None else None
                known = article.document() if article is not None else None
            if not raw.get("text") and known is not None:  # content dropped on the way
                raw = {**known.to_dict(), **{k: v for k, v in raw.items() if v}}
            try:
                doc = Document.from_dict(raw, index)
            except ValueError as exc:
                raise SkillInputError(f"extract: {exc}") from exc
            documents.append(doc)
            listed.append(doc.to_dict(score=raw.get("score"), with_text=False))
        keywords = list_of_str(found.get("keywords"))
        topic = topic_of(request, found)
        claims = extract_claims(documents, keywords, topic)
        content = carry_reading({
            "topic": topic,
            "questions": list_of_str(found.get("questions")),
            "keywords": keywords,
            "documents": listed,
            "claims": claims,
        }, found)
        text = f"Extracted {len(claims)} claims with figures from {len(documents)} documents{_on(topic)}."
        return SkillResult(text, [stage_artifact("extract", "claims", content, count=len(claims))])

    # 4
    def _verify(self, request: SkillRequest) -> SkillResult:
        found = find_input(request.payload, "claims", ("claims",))
        if not isinstance(found, dict) or not isinstance(found.get("claims"), list):
            raise SkillInputError("verify needs claims: previous = the extract result, or {'claims': [...]}")
        questions = list_of_str(found.get("questions"))
        result = verify_claims(found["claims"], questions)
        documents = found.get("documents")
        if not isinstance(documents, list):  # direct input: rebuild the document list from the claims
            documents = list(
                {
                    c.get("source_id"): {k: c.get(k) for k in ("title", "source", "date")} | {"id": c.get("source_id")}
                    for c in found["claims"]
                    if isinstance(c, dict) and c.get("source_id")
                }.values()
            )
        topic = topic_of(request, found)
        content = carry_reading({"topic": topic, "questions": questions, "keywords": list_of_str(found.get("keywords")),
                                 "documents": documents, **result}, found)
        text = f"Checked {result['summary']['total']} findings{_on(topic)}: {_summary_text(result['summary'])}."
        return SkillResult(text, [stage_artifact("verify", "verification", content, summary=result["summary"])])

    # 5
    def _synthesize(self, request: SkillRequest) -> SkillResult:
        verification = find_input(request.payload, "verification", ("verified",))
        if not isinstance(verification, dict) or not isinstance(verification.get("verified"), list):
            raise SkillInputError(
                "synthesize needs verified claims: previous = the verify result, or {'verified': [...]}"
            )
        verification = {**verification, "topic": topic_of(request, verification)}
        if "summary" not in verification:
            verification["summary"], verification["by_source"], verification["by_question"] = tally(
                verification["verified"], list_of_str(verification.get("questions"))
            )
        markdown, references = write_report(verification)
        answer, generator = llm.ask(
            "synthesize",
            "You write concise research reports in Markdown: a '# ' title, short sections with '## ' headings, "
            "findings only from the list given, each followed by its citation markers exactly as given, e.g. [1][3]. "
            "Say which findings are contested. Do not write a references section; it is added for you.",
            f"Topic: {verification['topic'] or 'see the findings'}\n\nFindings ((label) claim citations):\n"
            + "\n".join(f"- ({f['label']}) {finding_line(f)[2:]}" for f in cite_findings(verification)[0])
            + "\n\nSources:\n"
            + "\n".join(f"[{r['n']}] {r['title']} ({r['source']}, {r['date']})" for r in references),
        )
        if answer is not None:
            if re.search(r"\[\d+\]", answer):
                title = f"# Research report: {verification['topic']}" if verification["topic"] else "# Research report"
                body = answer if answer.lstrip().startswith("# ") else f"{title}\n\n{answer}"
                markdown = with_reading(with_references(body, references), verification.get("reading"))
            else:
                _, generator = llm.rejected("synthesize", "no citation markers")
        cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", split_references(markdown)[0])})
        report = stage_artifact(
            "synthesize", "report", markdown, "text/markdown",
            generator=generator, topic=verification["topic"], references=len(references), cited=cited,
            word_count=word_count(markdown),
        )
        return SkillResult(markdown, [self._pass_through(verification), report])

    # 6
    def _edit(self, request: SkillRequest) -> SkillResult:
        payload = request.payload
        found = find_input(payload, "report", ("report", "markdown"))
        report = found if isinstance(found, str) else (found or {}).get("report") or (found or {}).get("markdown")
        if not isinstance(report, str) or not report.strip():
            raise SkillInputError("edit needs a report: previous = the synthesize result, or {'report': '<markdown>'}")
        verification = find_input(payload, "verification", ("verified",))
        verification = verification if isinstance(verification, dict) else None
        if verification is not None:
            verification = {**verification, "topic": topic_of(request, verification)}
        changes: list[str] = []
        answer, generator = llm.ask(
            "edit",
            "You are a copy editor. Improve clarity and flow of the Markdown report you are given. Keep every "
            "heading, every figure and every citation marker like [2] exactly; keep the References section "
            "unchanged. Answer with the edited Markdown only.",
            report,
        )
        base = report
        if answer is not None:
            if answer.lstrip().startswith("#"):
                references = split_references(report)[1]
                base = answer if split_references(answer)[1] or not references else f"{answer.rstrip()}\n\n{references}"
                changes.append(f"Edited for clarity by {generator}.")
            else:
                _, generator = llm.rejected("edit", "the answer is not a Markdown report")
        edited, passes = edit_report(base, verification)
        edited = with_reading(edited, (verification or {}).get("reading"))
        edited = with_attribution(edited, (verification or {}).get("documents"))
        changes += passes
        words_after = word_count(edited)
        artifacts = [stage_artifact("edit", "changelog", {"changes": changes, "generator": generator})]
        if verification is not None:
            artifacts.append(self._pass_through(verification))
        artifacts.append(
            stage_artifact("edit", "report", edited, "text/markdown", generator=generator, word_count=words_after,
                      changes=len(changes), edited=True)
        )
        return SkillResult(edited, artifacts)

    # 7
    def _visualize(self, request: SkillRequest) -> SkillResult:
        payload = request.payload
        verification = find_input(payload, "verification", ("verified", "by_source"))
        if not isinstance(verification, dict):
            raise SkillInputError("visualize needs the verification: previous = the edit (or verify) result, "
                                  "or {'verified': [...]}")
        verification = {**verification, "topic": topic_of(request, verification)}
        complete = verification.get("by_source") and verification.get("summary")
        if isinstance(verification.get("verified"), list) and not complete:
            verification["summary"], verification["by_source"], verification["by_question"] = tally(
                verification["verified"], list_of_str(verification.get("questions"))
            )
        group_by = "question" if payload.get("group_by") == "question" else "source"
        svg, png, meta = render_charts(verification, group_by)
        totals = meta["totals"]
        groups = counted(len(meta["groups"]), "question" if group_by == "question" else "source")
        text = (f"Chart of {counted(sum(totals.values()), 'finding')}{_on(verification['topic'])} across "
                f"{groups}: {_summary_text(totals)}.")
        # The PNG first and the SVG last: a reader taking the last "chart" artifact gets the SVG, as before.
        png_artifact = {**stage_artifact("visualize", "chart", base64.b64encode(png).decode("ascii"), "image/png",
                                         **meta), "id": "chart-png"}
        return SkillResult(text, [png_artifact, stage_artifact("visualize", "chart", svg, "image/svg+xml", **meta)])

    def _pass_through(self, verification: dict[str, Any]) -> dict[str, Any]:
        return stage_artifact(self.stage, "verification", verification, passed_through=True)


def research_skill(stage: str, corpus: Corpus | None = None, *, ask: bool | None = None) -> ResearchSkill:
    """The skill of one stage (``corpus`` default: ``$AGENTVAULT_RESEARCH_CORPUS`` or the shipped one).

    ``ask``: whether an ambiguous topic makes the topic stage ask a person (default: on, unless
    ``$AGENTVAULT_RESEARCH_QUESTIONS`` is ``off``).
    """
    return ResearchSkill(stage, corpus, ask=ask)


def research_skills(corpus: Corpus | None = None, *, ask: bool | None = None) -> dict[str, ResearchSkill]:
    """All seven skills, in pipeline order."""
    return {stage: ResearchSkill(stage, corpus, ask=ask) for stage in STAGE_NAMES}
