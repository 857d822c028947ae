"""Whether a text is about the topic: the topic's key terms, in order, or in a title.

Why: ranking alone lets a source that merely mentions a word of the topic in passing ("Cactus" for
photosynthesis, "Xinhai Revolution" for the French Revolution) into the report. A source is on the
topic when its title names all of the topic's key terms, or when its opening sentences use them as a
phrase; from a source that is not itself about the topic only the sentences that name it are quoted.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentvault_stack.agent.research.text import sentences, terms

#: How many opening sentences of an article may introduce the topic for the article to be about it.
LEAD_SENTENCES = 2


def key_terms(topic: str) -> list[str]:
    """The topic's content terms, in order, without repeats ("the French Revolution" -> french, revolution)."""
    return list(dict.fromkeys(terms(topic)))


def _same(query: str, term: str) -> bool:
    """One term of the topic and one of a text match: equal, or the same word with another ending
    ("revolution" / "revolutionary"; only for terms of five letters or more)."""
    return term == query or (len(query) >= 5 and term.startswith(query[:-1]))


def names_all(title: str, key: Sequence[str]) -> bool:
    """Whether ``title`` names every key term (in any order)."""
    found = terms(title)
    return bool(key) and all(any(_same(k, t) for t in found) for k in key)


def names_phrase(text: str, key: Sequence[str]) -> bool:
    """Whether ``text`` uses the key terms as a phrase: one after the other, stopwords aside."""
    found = terms(text)
    n = len(key)
    return bool(key) and any(
        all(_same(key[j], found[i + j]) for j in range(n)) for i in range(len(found) - n + 1)
    )


def is_about(title: str, text: str, key: Sequence[str]) -> bool:
    """A source about the topic: its title names the topic, or its opening sentences do."""
    if names_all(title, key):
        return True
    # The whole text first: cutting sentences is the slow part, and most candidates never name the topic.
    return names_phrase(text, key) and any(names_phrase(s, key) for s in sentences(text)[:LEAD_SENTENCES])
