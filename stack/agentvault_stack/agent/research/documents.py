"""The research agents' corpus: Markdown documents with front matter, and a BM25 index (:mod:`.ranking`).

The default corpus ships in ``corpus/`` beside this module (synthetic, see its README);
``AGENTVAULT_RESEARCH_CORPUS`` or :meth:`Corpus.load` with a directory points the agents at another
folder of documents in the same format::

    ---
    title: Grid Operator Annual Statement 2023
    source: Valdora Grid Authority
    date: 2024-01-30
    topic: solar power adoption
    ---
    Body paragraphs...

The file name without its suffix is the document id; front matter is optional, and plain text
(``.txt``) and HTML (``.html``, its visible text) are read too. Everything is sorted so results never
depend on the file system's order. Only the folder's own files are the corpus; its ``readings/`` sub-folder
holds the documents of topics with several readings (see :mod:`.readings`).
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from agentvault_stack.agent.research.ranking import Ranker
from agentvault_stack.agent.research.text import STOPWORDS, normalise_word, sentences, terms, words

CORPUS_ENV = "AGENTVAULT_RESEARCH_CORPUS"
DEFAULT_CORPUS_DIR = Path(__file__).with_name("corpus")

#: Words that, second in a pair, make it a clause ("surveys found") rather than a phrase.
CLAUSE_WORDS = frozenset(
    "found find finds show shows showed recover recovers say says reach reaches make makes".split()
)
_HEADING_LINE = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_PHRASE_TOKEN = re.compile(r"[a-z][a-z0-9]*(?:[-'][a-z0-9]+)*|[^\sa-z]+")

#: Sources whose documents are encyclopedia articles (see :attr:`Document.is_article`).
ENCYCLOPEDIAS = frozenset({"Wikipedia"})

#: Frequent in reports of any topic, so useless as search keywords.
GENERIC_TERMS = frozenset(
    normalise_word(w)
    for w in """
    average city country current estimate expect figure high highest least long-term measure new next
    now own report reported say says show shows summer survey typical use used year day days month
    months official percent record total two twice well january february march april may june july
    august september october november december
    """.split()
)


@dataclass(frozen=True)
class Document:
    """One corpus document."""

    id: str
    title: str
    source: str
    date: str
    topic: str
    text: str
    url: str = ""  # where the text can be read (an encyclopedia article); optional
    attribution: str = ""  # the line a report quoting this text must end with (its license); optional

    @property
    def is_article(self) -> bool:
        """An encyclopedia article: each sentence states a fact, and each article is cited on its own."""
        return self.source in ENCYCLOPEDIAS and bool(self.url)

    def to_dict(self, *, score: float | None = None, with_text: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "date": self.date,
            "topic": self.topic,
        }
        for key in ("url", "attribution"):  # only when set, so documents without them look as they always did
            if getattr(self, key):
                out[key] = getattr(self, key)
        if score is not None:
            out["score"] = score
        if with_text:
            out["text"] = self.text
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], index: int = 0) -> Document:
        """A document from a plain dict (``text`` or ``content`` is required)."""
        text = data.get("text") or data.get("content") or ""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"document {data.get('id', index)!r} has no text")
        return cls(
            id=str(data.get("id") or f"doc-{index + 1}"),
            title=str(data.get("title") or data.get("id") or f"Document {index + 1}"),
            source=str(data.get("source") or "unknown source"),
            date=str(data.get("date") or ""),
            topic=str(data.get("topic") or ""),
            text=text,
            url=str(data.get("url") or ""),
            attribution=str(data.get("attribution") or ""),
        )

    @classmethod
    def parse(cls, doc_id: str, raw: str, file_name: str = "") -> Document:
        """A document from Markdown with a ``---`` front-matter block of ``key: value`` lines.

        Without a ``title`` the first heading is the title (else the id); without a ``source``, the
        file's name is (a reference then reads ``Overview of X. *notes.md*.``)."""
        meta: dict[str, str] = {}
        body = raw
        lines = raw.lstrip("\ufeff").splitlines()
        if lines and lines[0].strip() == "---":
            try:
                end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
            except StopIteration:
                raise ValueError(f"document {doc_id}: front matter not closed") from None
            for line in lines[1:end]:
                key, sep, value = line.partition(":")
                if sep:
                    meta[key.strip().lower()] = value.strip().strip('"').strip("'")
            body = "\n".join(lines[end + 1 :])
        heading = next((m.group(1) for m in _HEADING_LINE.finditer(body)), "")
        meta.setdefault("title", heading or doc_id)
        if file_name:
            meta.setdefault("source", file_name)
        return cls.from_dict({**meta, "id": doc_id, "text": body.strip()})


class Corpus:
    """Documents plus a BM25 index over their titles and bodies."""

    def __init__(self, documents: Iterable[Document], folder: Path | None = None) -> None:
        self.folder = folder  # where the documents were loaded from (None: built in memory)
        self.documents = sorted(documents, key=lambda d: d.id)
        ids = [d.id for d in self.documents]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate document ids in corpus")
        self.by_id = {d.id: d for d in self.documents}
        self._terms = {d.id: terms(f"{d.title}\n{d.text}") for d in self.documents}
        self._tf = {doc_id: Counter(ts) for doc_id, ts in self._terms.items()}
        self._df: Counter[str] = Counter()
        for tf in self._tf.values():
            self._df.update(tf.keys())
        self._ranker = Ranker([self._terms[d.id] for d in self.documents])

    def __len__(self) -> int:
        return len(self.documents)

    @classmethod
    def load(cls, directory: str | os.PathLike[str] | None = None) -> Corpus:
        """The corpus in ``directory`` (default: ``$AGENTVAULT_RESEARCH_CORPUS``, else the shipped one)."""
        folder = Path(directory or os.environ.get(CORPUS_ENV) or DEFAULT_CORPUS_DIR)
        return _load_cached(str(folder.resolve()))

    # -- search ----------------------------------------------------------------------------

    def idf(self, term: str) -> float:
        n, df = len(self.documents), self._df.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def bm25(self, query_terms: Iterable[str]) -> list[tuple[Document, float]]:
        """Every document with its BM25 score for ``query_terms`` (:mod:`.ranking`), best first (ties by id)."""
        scores = self._ranker.scores(list(query_terms))
        scored = [(doc, round(score, 4)) for doc, score in zip(self.documents, scores, strict=True)]
        return sorted(scored, key=lambda pair: (-pair[1], pair[0].id))

    # -- topics ----------------------------------------------------------------------------

    def topics(self) -> list[str]:
        return sorted({d.topic for d in self.documents if d.topic})

    def match_topic(self, text: str) -> str | None:
        """The corpus topic closest to ``text`` (by label and vocabulary), or ``None`` if none shares a term."""
        query = set(terms(text))
        best: tuple[float, str] | None = None
        for topic in self.topics():
            docs = [d for d in self.documents if d.topic == topic]
            label = set(terms(topic))
            score = 3.0 * len(query & label)
            for term in query:
                share = sum(1 for d in docs if term in self._tf[d.id]) / len(docs)
                score += share * self.idf(term)
            if score > 0 and (best is None or score > best[0]):
                best = (score, topic)
        return best[1] if best else None

    def topic_keywords(self, topic: str, limit: int = 8) -> list[str]:
        """Distinctive words of ``topic``'s documents (surface forms), best first."""
        docs = [d for d in self.documents if d.topic == topic]
        if not docs:
            return []
        surface: dict[str, Counter[str]] = {}
        for doc in docs:
            for word in words(f"{doc.title}\n{doc.text}"):
                surface.setdefault(normalise_word(word), Counter())[word.removesuffix("'s")] += 1
        names = {normalise_word(n) for n in proper_nouns(d.text for d in docs)}
        scores: dict[str, float] = {}
        for term in {t for d in docs for t in self._tf[d.id]}:
            if len(term) < 3 or term in GENERIC_TERMS or term in names or term not in surface:
                continue
            if _surface(surface[term]).endswith("ed"):  # a verb or participle, not a subject
                continue
            share = sum(1 for d in docs if term in self._tf[d.id]) / len(docs)
            if share < 0.5:  # must run through the topic, not one document
                continue
            count = sum(self._tf[d.id][term] for d in docs)
            scores[term] = share * self.idf(term) * math.log(1 + count)
        best = sorted(scores, key=lambda t: (-round(scores[t], 6), t))[:limit]
        return [_surface(surface[t]) for t in best]

    def topic_phrases(self, topic: str, limit: int = 4) -> list[str]:
        """Two-word phrases that at least two of ``topic``'s documents use ("grid connection"), best first."""
        docs = [d for d in self.documents if d.topic == topic]
        names = proper_nouns(d.text for d in docs)
        df: Counter[tuple[str, str]] = Counter()
        surface: dict[tuple[str, str], Counter[str]] = {}
        for doc in docs:
            keys = set()
            for a, b in _pairs(f"{doc.title}.\n{doc.text}", names):
                key = (normalise_word(a), normalise_word(b))
                if key[0] in GENERIC_TERMS and key[1] in GENERIC_TERMS:
                    continue
                keys.add(key)
                surface.setdefault(key, Counter())[f"{a} {b}"] += 1
            df.update(keys)
        scores = {k: n * (self.idf(k[0]) + self.idf(k[1])) for k, n in df.items() if n >= 2}
        chosen: list[tuple[str, str]] = []
        covered: set[str] = set()
        for key in sorted(scores, key=lambda k: (-round(scores[k], 6), k)):
            if key[0] in covered and key[1] in covered:
                continue
            chosen.append(key)
            covered.update(key)
            if len(chosen) >= limit:
                break
        return [_surface(surface[k]) for k in chosen]


def proper_nouns(texts: Iterable[str]) -> set[str]:
    """Lower-cased words only ever written capitalised, sentence starts aside (names: Valdora, Hessel)."""
    capital: set[str] = set()
    lower: set[str] = set()
    for text in texts:
        for sentence in sentences(text):
            for word in re.findall(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*", sentence)[1:]:
                (capital if word[0].isupper() else lower).add(word.lower().removesuffix("'s"))
    return capital - lower


def _pairs(text: str, names: set[str] | frozenset[str] = frozenset()) -> Iterable[tuple[str, str]]:
    """Adjacent word pairs of ``text`` that could be a noun phrase (no stopword, name, number or punctuation)."""
    tokens = _PHRASE_TOKEN.findall(text.lower())
    for a, b in zip(tokens, tokens[1:], strict=False):
        if not (a[0].isalpha() and b[0].isalpha()) or a in STOPWORDS or b in STOPWORDS:
            continue
        if a.removesuffix("'s") in names or b.removesuffix("'s") in names:
            continue
        if len(a) < 3 or len(b) < 3 or b in CLAUSE_WORDS or b.endswith("ed"):
            continue
        yield a.removesuffix("'s"), b.removesuffix("'s")


def _surface(forms: Counter[str]) -> str:
    """The most frequent written form of a term (ties: the shortest, then alphabetical)."""
    return sorted(forms.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))[0][0]


@functools.lru_cache(maxsize=8)
def _load_cached(folder: str) -> Corpus:
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"research corpus directory not found: {folder}")
    documents = [
        read_document(file)
        for file in sorted(path.iterdir())
        if file.suffix.lower() in DOCUMENT_SUFFIXES and file.name.lower() != "readme.md" and file.is_file()
    ]
    return Corpus(documents, path)


#: Files a corpus folder may hold: Markdown (front matter optional), plain text and HTML.
DOCUMENT_SUFFIXES = (".md", ".txt", ".html", ".htm")


def read_document(file: Path) -> Document:
    """One file of a corpus folder; HTML becomes its visible text, its ``<title>`` the title."""
    raw = file.read_text(encoding="utf-8", errors="replace")
    if file.suffix.lower() in (".html", ".htm"):
        page = _VisibleText()
        page.feed(raw)
        return Document.from_dict({"id": file.stem, "title": page.title.strip() or file.stem,
                                   "source": file.name, "text": page.text()})
    if file.suffix.lower() == ".txt":
        first, _, rest = raw.lstrip("\ufeff").strip().partition("\n")
        titled = len(first) <= 120 and rest.strip()
        return Document.from_dict({"id": file.stem, "title": first.strip() if titled else file.stem,
                                   "source": file.name, "text": rest.strip() if titled else raw.strip()})
    return Document.parse(file.stem, raw, file.name)


class _VisibleText(HTMLParser):
    """The text a browser shows (scripts and styles dropped), paragraph breaks kept."""

    BLOCKS = frozenset("p div br li h1 h2 h3 h4 h5 h6 tr section article blockquote".split())

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self._parts: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self.BLOCKS:
            self._parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self._parts.append(data)

    def text(self) -> str:
        paragraphs = (" ".join(p.split()) for p in "".join(self._parts).split("\n\n"))
        return "\n\n".join(p for p in paragraphs if p)
