"""Topics with several readings ("mercury": the planet or the chemical element) and their documents.

Why: a research agent given such a topic cannot know which one is meant, so the topic stage asks a
person (INPUT_REQUIRED, the readings as options) and the whole pipeline works on the chosen one.

The documents live in the corpus folder's ``readings/`` sub-folder, in the corpus format, with the
topic written ``<word> (<reading>)`` (``topic: mercury (the planet)``). They get a BM25 index of their
own, so adding readings never changes the scores, and so the reports, of the main corpus's topics.

Asking can be turned off (``AGENTVAULT_RESEARCH_QUESTIONS=off``, or ``--no-questions`` on the agents'
command): the first reading is then taken, and the report says so.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from agentvault_stack.agent.research.documents import Corpus
from agentvault_stack.agent.research.text import normalise_word, terms, words

READINGS_DIR = "readings"
ASK_ENV = "AGENTVAULT_RESEARCH_QUESTIONS"
_OFF = frozenset({"0", "off", "false", "no"})
_TOPIC = re.compile(r"^\s*(?P<word>[^()]+?)\s*\((?P<label>[^()]+)\)\s*$")


def asking_enabled(default: bool | None = None) -> bool:
    """``default`` when given, else whether ``$AGENTVAULT_RESEARCH_QUESTIONS`` leaves asking on."""
    if default is not None:
        return default
    return os.environ.get(ASK_ENV, "").strip().lower() not in _OFF


def question_for(word: str) -> str:
    return f"Which {word} do you mean?"


@dataclass(frozen=True)
class Reading:
    """One reading of an ambiguous word: ``label`` is what a person chooses, ``topic`` the documents' topic."""

    word: str
    label: str
    topic: str


class Readings:
    """The ambiguous words of one corpus, their readings (in file order) and the readings' documents."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.by_word: dict[str, list[Reading]] = {}
        for topic in dict.fromkeys(d.topic for d in corpus.documents):
            match = _TOPIC.match(topic)
            if match:
                word, label = match.group("word"), match.group("label")
                self.by_word.setdefault(normalise_word(word.lower()), []).append(Reading(word, label, topic))

    def ambiguous(self, topic: str) -> list[Reading]:
        """The readings of the first word of ``topic`` that has two or more; ``[]`` when it is clear."""
        for word in words(topic):
            found = self.by_word.get(normalise_word(word.lower()), [])
            if len(found) > 1:
                return found
        return []

    @staticmethod
    def choose(readings: list[Reading], answer: str) -> Reading | None:
        """The reading an answer names: its label exactly (any case), else the one sharing most terms."""
        wanted = answer.strip().lower()
        for reading in readings:
            if reading.label.lower() == wanted:
                return reading
        given = set(terms(answer)) - {normalise_word(r.word.lower()) for r in readings}
        scored = sorted(((len(given & set(terms(r.label))), i) for i, r in enumerate(readings)), reverse=True)
        if not scored or scored[0][0] == 0 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
            return None
        return readings[scored[0][1]]


def readings_of(corpus: Corpus) -> Readings:
    """The readings shelf beside ``corpus`` (empty for a corpus built in memory or without one)."""
    if corpus.folder is None:
        return Readings(Corpus([]))
    return _load(str(Path(corpus.folder) / READINGS_DIR))


@functools.lru_cache(maxsize=8)
def _load(folder: str) -> Readings:
    return Readings(Corpus.load(folder) if Path(folder).is_dir() else Corpus([]))
