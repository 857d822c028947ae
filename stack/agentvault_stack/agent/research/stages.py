"""The seven research skills and the pure functions behind them.

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
                                       date, topic, score, text}]}
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
visualize         chart / chart        SVG bar chart (``image/svg+xml``)
================  ===================  ===============================================================

A topic with several readings ("mercury", see :mod:`.readings`) makes topic_research ask a person
which one is meant (INPUT_REQUIRED, the readings as options) unless the data part names a ``reading``;
the plan then carries ``reading``, every later stage's main artifact passes it on, crawl searches that
reading's documents only, and the report says ``Reading chosen: <reading>``.

A topic the shipped corpus has no document on is looked up in the general-knowledge corpus (Wikipedia
summaries, see :mod:`.general`) when its package is installed: the plan then carries ``corpus:
general-knowledge``, documents carry ``url`` and ``attribution``, extract takes every sentence stating
a figure, date or named fact (each article counts as a source of its own), and the report cites the
article URLs and ends with the attribution line.

Artifact ids get the task id as prefix on the wire (``ref-1a2b3c4d-report``). When the immediate
predecessor lacks an artifact, :func:`find_input` also looks further back, through the ``previous``
data part of the predecessor's own user message when the result carries one (the provider's results
do not echo the request; ``previous`` may also be a list of results). Every stage also takes direct
input (``{"documents": [...]}`` for extract, ``{"claims": [...]}`` for verify, ...), which is what
the unit tests use.

Why one long module: the seven skills hand one artifact shape down the pipeline (the table above);
kept together, a change to one stage's output sits next to every stage that reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from agentvault_stack.agent.research import general, llm
from agentvault_stack.agent.research.chart import render_chart
from agentvault_stack.agent.research.documents import CORPUS_ENV, Corpus, Document
from agentvault_stack.agent.research.readings import Reading, Readings, asking_enabled, question_for, readings_of
from agentvault_stack.agent.research.report import (
    LABELS,
    cite_findings,
    edit_report,
    finding_line,
    split_references,
    with_attribution,
    with_reading,
    with_references,
    word_count,
    write_report,
)
from agentvault_stack.agent.research.text import (
    Quantity,
    claim_core,
    has_number,
    jaccard,
    normalise_word,
    numbers,
    overlap,
    sentences,
    states_fact,
    term_set,
    terms,
    words,
)
from agentvault_stack.agent.skills import Skill, SkillInputError, SkillRequest, SkillResult, make_artifact

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

DEFAULT_TOP_N = 5
#: Two claims from different sources state the same finding from this similarity on.
SAME_FINDING = 0.6
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


def _list_of_str(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, (str, int, float))] if isinstance(value, list) else []


def _with_reading(content: dict[str, Any], source: Any) -> dict[str, Any]:
    """``content`` plus the ``reading`` that ``source`` carries, if any (later stages need it)."""
    reading = source.get("reading") if isinstance(source, dict) else None
    return {**content, "reading": reading} if isinstance(reading, str) and reading else content


def _artifact(stage: str, artifact_id: str, content: Any, media_type: str = "application/json", **meta: Any) -> dict:
    """An artifact whose type is its id (``plan`` is of type ``research_plan``), metadata naming the stage."""
    artifact_type = "research_plan" if artifact_id == "plan" else artifact_id
    return make_artifact(artifact_id, artifact_type, content, media_type, {"stage": stage, **meta})


# -- 1. topic research ----------------------------------------------------------------------


def plan_research(topic: str, corpus: Corpus, *, limit: int = 8, corpus_topic: str | None = None) -> dict[str, Any]:
    """Sub-questions and search keywords for ``topic``, from templates and the corpus's vocabulary.

    ``corpus_topic`` names the corpus topic to draw on (default: the one closest to ``topic``).
    """
    corpus_topic = corpus_topic or corpus.match_topic(topic)
    own = [w for w in dict.fromkeys(words(topic)) if normalise_word(w) in set(terms(topic))]
    keywords: list[str] = []
    seen: set[str] = set()
    phrases = corpus.topic_phrases(corpus_topic) if corpus_topic else []
    singles = corpus.topic_keywords(corpus_topic, limit + len(own)) if corpus_topic else []
    covered: set[str] = set()
    for keyword in own + phrases + singles:
        parts = [normalise_word(w) for w in words(keyword)]
        key = " ".join(parts)
        if not key or key in seen or (len(parts) == 1 and key in covered):
            continue
        seen.add(key)
        keywords.append(keyword)
        if len(parts) > 1:
            covered.update(parts)
    keywords = keywords[: max(limit, len(own))]
    own_keys = {normalise_word(w) for w in own}
    extra = [k for k in keywords if normalise_word(k) not in own_keys]

    def pair(a: int, b: int) -> str | None:
        return f"{extra[a]} and {extra[b]}" if len(extra) > b else None

    questions = [
        f"What is the current state of {topic}?",
        f"What figures are reported for {pair(0, 1) or topic}?",
        (f"How have {pair(2, 3)} changed in recent years?" if len(extra) > 3
         else f"How has {topic} changed in recent years?"),
        f"Where do sources disagree about {extra[4] if len(extra) > 4 else topic}?",
        f"What costs, risks or barriers affect {topic}?",
    ]
    if len(extra) > 5:
        questions.append(f"What targets or next steps are reported for {extra[5]}?")
    return {"topic": topic, "corpus_topic": corpus_topic, "questions": questions, "keywords": keywords}


def parse_questions(text: str) -> list[str]:
    """Questions from an LLM answer: one per line, bullets and numbering removed."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*+•]|\d+[.)]|q\d+[:.)])\s*", "", line.strip(), flags=re.I).strip().strip('"')
        if len(line) > 10 and line.endswith("?") and line not in out:
            out.append(line)
    return out[:6]


# -- 2. crawl -------------------------------------------------------------------------------


def crawl_documents(
    corpus: Corpus, topic: str, keywords: list[str], *, top_n: int = DEFAULT_TOP_N, min_share: float = 0.25,
    only_topic: str | None = None,
) -> list[dict[str, Any]]:
    """The ``top_n`` documents most relevant to the keywords (BM25), each with its score and text.

    Documents scoring below ``min_share`` of the best score are left out; with ``only_topic``, so are
    documents of any other corpus topic (another reading of the same word).
    """
    query = terms(" ".join([topic, *keywords]))
    ranked = [(doc, score) for doc, score in corpus.bm25(query)
              if score > 0 and (only_topic is None or doc.topic == only_topic)]
    if not ranked:
        return []
    floor = ranked[0][1] * min_share
    return [doc.to_dict(score=score) for doc, score in ranked if score >= floor][: max(top_n, 0)]


def nothing_covers(topic: str, corpus: Corpus, knowledge: general.GeneralKnowledge | None = None) -> str:
    """Why a crawl found nothing, and what to do: an empty report must never pass for a result.

    ``knowledge``: the general-knowledge corpus searched too (``None``: it is not installed).
    """
    covered = ", ".join(corpus.topics()) or "nothing yet"
    message = (f"no document in the research corpus is about {topic!r}; it covers: {covered}. Add Markdown "
               f"documents on the topic to the corpus folder (set {CORPUS_ENV} to a folder of your own, or pass "
               "--corpus to the agents' command) and run again")
    if knowledge is None:
        return (f"{message}. For everyday topics, install the general-knowledge corpus (Wikipedia summaries, "
                f"read offline): {general.INSTALL_HINT}")
    return f"{message}. No article of the general-knowledge corpus ({len(knowledge)} Wikipedia summaries) matches it either"


def general_plan(topic: str, knowledge: general.GeneralKnowledge) -> dict[str, Any] | None:
    """A plan drawn from the general-knowledge articles on ``topic`` (``None`` when none match)."""
    found = [article.document() for article, _ in knowledge.search(topic)]
    if not found:
        return None
    shelf = Corpus(Document(**{**vars(doc), "topic": topic}) for doc in found)
    return {**plan_research(topic, shelf, corpus_topic=topic), "corpus_topic": None, "corpus": general.CORPUS_NAME}


# -- 3. extract -----------------------------------------------------------------------------


def extract_claims(documents: list[Document], keywords: list[str] | None = None) -> list[dict[str, Any]]:
    """Every sentence stating a figure, as a claim with its source and position."""
    wanted = {normalise_word(k.lower()): k for k in keywords or []}
    claims = []
    for doc in documents:
        # An encyclopedia states facts without figures too, and each article is an author of its own.
        source, is_claim = (f"{doc.source}: {doc.title}", states_fact) if doc.is_article else (doc.source, has_number)
        for index, sentence in enumerate(sentences(doc.text)):
            if not is_claim(sentence):
                continue
            quantities, years = numbers(sentence)
            present = term_set(sentence)
            claims.append(
                {
                    "id": f"{doc.id}#{index}",
                    "claim": sentence,
                    "source_id": doc.id,
                    "source": source,
                    "title": doc.title,
                    "date": doc.date,
                    "sentence_index": index,
                    "numbers": [str(q) for q in quantities],
                    "years": years,
                    "keywords": [k for t, k in wanted.items() if t in present],
                }
            )
    return claims


# -- 4. verify ------------------------------------------------------------------------------


class _Claim:
    def __init__(self, claim: dict[str, Any]) -> None:
        self.data = claim
        self.text = str(claim["claim"])
        self.doc = str(claim.get("source_id") or claim.get("source") or "?")
        self.source = str(claim.get("source") or self.doc)
        self.terms = term_set(claim_core(self.text))
        self.quantities, years = numbers(self.text)
        self.years = frozenset(years)


def similarity(a: _Claim, b: _Claim) -> float:
    """How likely two claims state the same finding (0..1): shared terms, plus shared figures.

    Claims about different years are different findings (0).
    """
    if a.years and b.years and not (a.years & b.years):
        return 0.0
    score = (jaccard(a.terms, b.terms) + overlap(a.terms, b.terms)) / 2
    if any(x.close_to(y) for x in a.quantities for y in b.quantities):
        score += 0.15
    return min(score, 1.0)


def agree(a: list[Quantity], b: list[Quantity]) -> bool:
    """Whether two claims' figures agree: every figure of the shorter list appears in the longer."""
    if not a or not b:
        return True
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return all(any(x.close_to(y) for y in long) for x in short)


def _positions(members: list[_Claim]) -> list[list[_Claim]]:
    """Members split into groups whose figures agree (first-come order)."""
    positions: list[list[_Claim]] = []
    for member in members:
        for position in positions:
            if agree(position[0].quantities, member.quantities) and all(
                agree(m.quantities, member.quantities) for m in position
            ):
                position.append(member)
                break
        else:
            positions.append([member])
    return positions


def tally(verified: list[dict[str, Any]], questions: list[str]) -> tuple[dict, dict, list]:
    """``summary``, ``by_source`` and ``by_question`` counts of verified findings."""
    summary = {label: 0 for label in LABELS}
    by_source: dict[str, dict[str, int]] = {}
    by_question = [{"question": q, **{label: 0 for label in LABELS}} for q in questions]
    for finding in verified:
        label = finding.get("label")
        if label not in summary:
            continue
        summary[label] += 1
        for source in finding.get("sources") or []:
            by_source.setdefault(source, {lb: 0 for lb in LABELS})[label] += 1
        question = finding.get("question")
        if isinstance(question, int) and 0 <= question < len(by_question):
            by_question[question][label] += 1
    summary["total"] = sum(summary[label] for label in LABELS)
    return summary, dict(sorted(by_source.items())), by_question


def verify_claims(claims: list[dict[str, Any]], questions: list[str] | None = None) -> dict[str, Any]:
    """Group claims that state the same finding and label each group.

    ``corroborated``: two or more sources, figures agree; ``contested``: two or more sources whose
    figures disagree; ``single-source``: one source only.
    """
    questions = list(questions or [])
    items = [_Claim(c) for c in claims if isinstance(c, dict) and c.get("claim")]
    groups: list[list[_Claim]] = []
    for item in items:
        best, best_score = None, 0.0
        for index, members in enumerate(groups):
            score = max(similarity(item, m) for m in members)
            if score > best_score:
                best, best_score = index, score
        if best is not None and best_score >= SAME_FINDING:
            groups[best].append(item)
        else:
            groups.append([item])

    question_terms = [term_set(q) for q in questions]
    verified = []
    for number, members in enumerate(groups, 1):
        sources = list(dict.fromkeys(m.source for m in members))
        positions = _positions(members)
        multi = [p for p in positions if any(m.quantities for m in p)]
        if len(sources) < 2:
            label = "single-source"
        elif len(multi) > 1 and len({m.source for p in multi for m in p}) > 1:
            label = "contested"
        else:
            label = "corroborated"
        head = members[0]
        group_terms = frozenset().union(*(m.terms for m in members))
        scores = [len(group_terms & qt) for qt in question_terms]
        question = scores.index(max(scores)) if scores and max(scores) > 0 else None
        verified.append(
            {
                "id": f"f{number}",
                "label": label,
                "claim": head.text,
                "sources": sources,
                "documents": list(dict.fromkeys(m.doc for m in members)),
                "numbers": [str(q) for q in head.quantities],
                "question": question,
                "positions": [
                    {
                        "claim": p[0].text,
                        "numbers": [str(q) for q in p[0].quantities],
                        "sources": list(dict.fromkeys(m.source for m in p)),
                        "documents": list(dict.fromkeys(m.doc for m in p)),
                    }
                    for p in positions
                ],
                "evidence": [
                    {
                        "claim": m.text,
                        "source_id": m.doc,
                        "source": m.source,
                        "title": m.data.get("title"),
                        "date": m.data.get("date"),
                        "sentence_index": m.data.get("sentence_index"),
                        "numbers": [str(q) for q in m.quantities],
                    }
                    for m in members
                ],
            }
        )
    summary, by_source, by_question = tally(verified, questions)
    return {"verified": verified, "summary": summary, "by_source": by_source, "by_question": by_question}


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
                self.corpus, topic, _list_of_str(plan.get("keywords")), top_n=1)
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
        return SkillResult(text, [_artifact("topic_research", "plan", plan, generator=generator)])

    # 2
    def _crawl(self, request: SkillRequest) -> SkillResult:
        payload = request.payload
        plan = find_input(payload, "research_plan", ("keywords",))
        topic = topic_of(request, plan, from_text=True)
        if not isinstance(plan, dict):
            if not topic:
                raise SkillInputError("crawl needs a research plan (previous: the topic_research result) or a topic")
            plan = plan_research(topic, self.corpus)
        keywords = _list_of_str(plan.get("keywords"))
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
        content = _with_reading({
            "topic": topic,
            "questions": _list_of_str(plan.get("questions")),
            "keywords": keywords,
            "documents": documents,
        }, plan)
        listed = "; ".join(f"{d['title']} ({d['source']}, score {d['score']})" for d in documents)
        shelf = f" in the {general.CORPUS_NAME} corpus" if knowledge is not None else ""
        text = f"Found {len(documents)} relevant documents{shelf} on {topic}" + (f": {listed}." if documents else ".")
        return SkillResult(text, [_artifact("crawl", "documents", content, count=len(documents))])

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
        keywords = _list_of_str(found.get("keywords"))
        claims = extract_claims(documents, keywords)
        topic = topic_of(request, found)
        content = _with_reading({
            "topic": topic,
            "questions": _list_of_str(found.get("questions")),
            "keywords": keywords,
            "documents": listed,
            "claims": claims,
        }, found)
        text = f"Extracted {len(claims)} claims with figures from {len(documents)} documents{_on(topic)}."
        return SkillResult(text, [_artifact("extract", "claims", content, count=len(claims))])

    # 4
    def _verify(self, request: SkillRequest) -> SkillResult:
        found = find_input(request.payload, "claims", ("claims",))
        if not isinstance(found, dict) or not isinstance(found.get("claims"), list):
            raise SkillInputError("verify needs claims: previous = the extract result, or {'claims': [...]}")
        questions = _list_of_str(found.get("questions"))
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
        content = _with_reading({"topic": topic, "questions": questions, "keywords": _list_of_str(found.get("keywords")),
                                 "documents": documents, **result}, found)
        text = f"Checked {result['summary']['total']} findings{_on(topic)}: {_summary_text(result['summary'])}."
        return SkillResult(text, [_artifact("verify", "verification", content, summary=result["summary"])])

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
                verification["verified"], _list_of_str(verification.get("questions"))
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
        report = _artifact(
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
        artifacts = [_artifact("edit", "changelog", {"changes": changes, "generator": generator})]
        if verification is not None:
            artifacts.append(self._pass_through(verification))
        artifacts.append(
            _artifact("edit", "report", edited, "text/markdown", generator=generator, word_count=words_after,
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
                verification["verified"], _list_of_str(verification.get("questions"))
            )
        group_by = "question" if payload.get("group_by") == "question" else "source"
        svg, meta = render_chart(verification, group_by)
        totals = meta["totals"]
        text = (
            f"Chart of {sum(totals.values())} findings{_on(verification['topic'])} across "
            f"{len(meta['groups'])} {'questions' if group_by == 'question' else 'sources'}: {_summary_text(totals)}."
        )
        return SkillResult(text, [_artifact("visualize", "chart", svg, "image/svg+xml", **meta)])

    def _pass_through(self, verification: dict[str, Any]) -> dict[str, Any]:
        return _artifact(self.stage, "verification", verification, passed_through=True)


STAGE_DESCRIPTIONS = {
    "topic_research": "Breaks a topic into research sub-questions and search keywords.",
    "crawl": "Ranks the reference corpus's documents by relevance (BM25) to the research plan.",
    "extract": "Extracts every sentence stating a figure, as a claim with its source.",
    "verify": "Groups claims across sources: corroborated, contested or single-source.",
    "synthesize": "Writes a Markdown report of the verified findings with numbered citations.",
    "edit": "Edits the report: title case headings, one number style, no repeats, a summary on top.",
    "visualize": "Charts the verification per source as an SVG bar chart.",
}


def research_skill(stage: str, corpus: Corpus | None = None, *, ask: bool | None = None) -> ResearchSkill:
    """The skill of one stage (``corpus`` default: ``$AGENTVAULT_RESEARCH_CORPUS`` or the shipped one).

    ``ask``: whether an ambiguous topic makes the topic stage ask a person (default: on, unless
    ``$AGENTVAULT_RESEARCH_QUESTIONS`` is ``off``).
    """
    return ResearchSkill(stage, corpus, ask=ask)


def research_skills(corpus: Corpus | None = None, *, ask: bool | None = None) -> dict[str, ResearchSkill]:
    """All seven skills, in pipeline order."""
    return {stage: ResearchSkill(stage, corpus, ask=ask) for stage in STAGE_NAMES}
