"""The topic_research and crawl stages' work: a plan of questions and keywords, documents ranked for it.

Pure functions of the topic and the corpus (the skills in :mod:`.stages` add the LLM, the readings
and the general-knowledge fallback around them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agentvault_stack.agent.research import general
from agentvault_stack.agent.research.documents import CORPUS_ENV, DEFAULT_CORPUS_DIR, Corpus, Document
from agentvault_stack.agent.research.relevance import key_terms, names_all
from agentvault_stack.agent.research.text import normalise_word, terms, words

DEFAULT_TOP_N = 5


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
    # Questions name the topic or a phrase its documents share, never a lone word ("system", "water").
    extra = [k for k in keywords if normalise_word(k) not in own_keys and len(words(k)) > 1]

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
        questions.append(f"What targets or next steps are reported for {topic}?")
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

    A document whose title names the whole topic gets the best BM25 score added, so a folder's own
    document on the topic ranks first. Documents scoring below ``min_share`` of the best score are left
    out; with ``only_topic``, so are documents of any other corpus topic (another reading of the same word).
    """
    query = terms(" ".join([topic, *keywords]))
    key = key_terms(topic)
    found = [(doc, score) for doc, score in corpus.bm25(query)
             if score > 0 and (only_topic is None or doc.topic == only_topic)]
    if not found:
        return []
    best = found[0][1]
    kept = [(doc, round(score + best * names_all(doc.title, key), 4)) for doc, score in found if score >= best * min_share]
    kept.sort(key=lambda pair: (-pair[1], pair[0].id))
    return [doc.to_dict(score=score) for doc, score in kept][: max(top_n, 0)]


def collection(corpus: Corpus | None) -> dict[str, str]:
    """Which corpus documents came from, for the report's Method section: ``{"kind", "name"}``, kind one
    of ``synthetic`` (the shipped sample corpus), ``general-knowledge`` (``None``: Wikipedia summaries),
    ``folder`` (a user's folder, by its name) or ``given`` (documents built in memory)."""
    if corpus is None:
        return {"kind": general.CORPUS_NAME, "name": general.SOURCE}
    if corpus.folder is None:
        return {"kind": "given", "name": ""}
    folder = Path(corpus.folder).resolve()
    if folder == DEFAULT_CORPUS_DIR.resolve() or DEFAULT_CORPUS_DIR.resolve() in folder.parents:
        return {"kind": "synthetic", "name": "the shipped sample corpus"}
    return {"kind": "folder", "name": folder.name}


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
    return f"{message}. No article of the general-knowledge corpus ({len(knowledge)} Wikipedia summaries) matches it either."


def general_plan(topic: str, knowledge: general.GeneralKnowledge) -> dict[str, Any] | None:
    """A plan drawn from the general-knowledge articles on ``topic`` (``None`` when none match)."""
    found = [article.document() for article, _ in knowledge.search(topic)]
    if not found:
        return None
    shelf = Corpus(Document(**{**vars(doc), "topic": topic}) for doc in found)
    plan = plan_research(topic, shelf, corpus_topic=topic)
    return {**plan, "questions": general_questions(topic), "corpus_topic": None, "corpus": general.CORPUS_NAME}


def general_questions(topic: str) -> list[str]:
    """Questions that fit any encyclopedia topic (a person, a place, an event, a process): each names the
    topic itself, never a word picked from the articles, so none can ask about something off the topic."""
    return [
        f"What are the main facts about {topic}?",
        f"Which dates and figures do the sources give for {topic}?",
        f"Which people, places or things are linked with {topic}?",
        f"Where do the sources disagree about {topic}?",
    ]
