"""The extract and verify stages' work: claims with figures from documents, grouped across sources.

Pure functions: the same documents always give the same claims and the same verdicts (corroborated,
contested, single-source), which the report and the chart count.
"""

from __future__ import annotations

from typing import Any

from agentvault_stack.agent.research.documents import Document
from agentvault_stack.agent.research.relevance import key_terms, names_all, names_phrase
from agentvault_stack.agent.research.report import LABELS
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
    words,
)

#: Two claims from different sources state the same finding from this similarity on.
SAME_FINDING = 0.6


# -- 3. extract -----------------------------------------------------------------------------


def extract_claims(documents: list[Document], keywords: list[str] | None = None,
                   topic: str = "") -> list[dict[str, Any]]:
    """Every sentence stating a figure, as a claim with its source and position.

    From an encyclopedia article that is not itself on ``topic`` (its title does not name it) only the
    sentences naming the topic are taken: the rest of such an article is about something else. From the
    topic's own article, every sentence of six words or more is (each one describes the topic).
    """
    wanted = {normalise_word(k.lower()): k for k in keywords or []}
    key = key_terms(topic)
    claims = []
    for doc in documents:
        # An encyclopedia states facts without figures too, and each article is an author of its own.
        source, is_claim = (f"{doc.source}: {doc.title}", states_fact) if doc.is_article else (doc.source, has_number)
        aside = doc.is_article and bool(key) and not names_all(doc.title, key)
        if doc.is_article and key and not aside:  # the topic's own article: every full sentence informs
            is_claim = is_sentence
        for index, sentence in enumerate(sentences(doc.text)):
            if not is_claim(sentence) or (aside and not names_phrase(sentence, key)):
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


def is_sentence(sentence: str) -> bool:
    """A full sentence (six words or more), not a fragment or a caption."""
    return len(words(sentence)) >= 6


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
