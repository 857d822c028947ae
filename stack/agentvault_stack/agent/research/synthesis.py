"""The report's findings as paragraphs by theme, each sentence citing its sources.

Why: a list of extracted sentences, one per finding, reads as raw material, not as a report. Findings
are grouped under the plan's key phrases (two-word phrases the topic's documents share, "grid
connection"): a finding joins the first phrase it uses; else, quoted from an encyclopedia article on a
neighbouring subject, under that article's title; else (and the first document's opening sentence,
which says what the topic is) it opens the report as its overview. Within a
paragraph corroborated findings come first, then contested ones (saying where sources disagree), then
single-source ones. Deterministic.
"""

from __future__ import annotations

from typing import Any

from agentvault_stack.agent.research.relevance import key_terms, names_all
from agentvault_stack.agent.research.text import term_set, terms

LABEL_ORDER = {"corroborated": 0, "contested": 1, "single-source": 2}
OVERVIEW = "Overview"


def themes(verification: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """``[(theme, finding ids)]`` in report order; every finding with a claim appears exactly once."""
    topic = str(verification.get("topic") or "")
    key = key_terms(topic)
    phrases = []
    for keyword in verification.get("keywords") or []:
        parts = frozenset(terms(str(keyword)))
        if len(parts) > 1 and not parts <= set(key) and parts not in (p for _, p in phrases):
            phrases.append((str(keyword), parts))
    articles = {str(d.get("id")): str(d.get("title") or "") for d in verification.get("documents") or []
                if isinstance(d, dict) and d.get("url") and not names_all(str(d.get("title") or ""), key)}
    first_doc = next((str(d.get("id")) for d in verification.get("documents") or [] if isinstance(d, dict)), None)
    placed: list[tuple[dict[str, Any], str | None, str | None]] = []  # (finding, phrase, neighbour article)
    for finding in verification.get("verified") or []:
        if not isinstance(finding, dict) or not finding.get("claim"):
            continue
        used = term_set(str(finding["claim"]))
        doc = str(next(iter(finding.get("documents") or []), ""))
        opening = doc == first_doc and (finding.get("evidence") or [{}])[0].get("sentence_index") == 0
        phrase = None if opening else next((name for name, parts in phrases if parts <= used), None)
        placed.append((finding, phrase, articles.get(doc)))
    sizes: dict[str | None, int] = {}
    for _, phrase, _ in placed:
        sizes[phrase] = sizes.get(phrase, 0) + 1
    groups: dict[str, list[dict[str, Any]]] = {}
    for finding, phrase, article in placed:
        # A phrase one neighbouring article alone uses stays with that article.
        theme = phrase if phrase and (sizes[phrase] > 1 or article is None) else article or OVERVIEW
        groups.setdefault(theme, []).append(finding)
    order = [OVERVIEW, *(name for name, _ in phrases), *groups]
    main = [(t, groups[t]) for t in dict.fromkeys(order) if t in groups]
    return [(theme, [str(f.get("id")) for f in sorted(members, key=_rank)]) for theme, members in main]


def _rank(finding: dict[str, Any]) -> int:
    return LABEL_ORDER.get(str(finding.get("label")), 3)


def paragraph(findings: list[dict[str, Any]], sentence: Any) -> str:
    """One paragraph: each cited finding written by ``sentence`` (the report's finding writer), in order."""
    return " ".join(sentence(f) for f in findings)


def theme_title(theme: str, topic: str) -> str:
    """A theme's heading: the keyword with a capital first letter; the overview names the topic."""
    if theme == OVERVIEW and topic:
        return f"{topic[:1].upper()}{topic[1:]} in brief"
    return theme[:1].upper() + theme[1:]
