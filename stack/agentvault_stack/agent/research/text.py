"""Small, deterministic text tools for the research skills: words, stems, numbers and sentences.

Deliberately small and rule-based: the research agents must give the same answer on every run and
every machine, offline. Sentences are cut by ``pysbd`` (rules only, no model to download), which knows
abbreviations ("Dr.", "U.S.", "c.") and decimals that a full stop alone would split.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass

import pysbd

STOPWORDS = frozenset(
    """
    a about above according across after again against all almost also although am among an and any
    are around as at be because been before being below between both but by can could did do does
    doing down during each either enough etc every far few for from further had has have having he
    her here hers him his how however i if in into is it its itself just last least less like made
    make many may me might more most much must my near nearly no nor not now of off on once one only
    or other our ours out over own per same she should since so some such than that the their them
    then there these they this those through thus to too under until up upon us very via was we were
    what when where whether which while who whom whose why will with within without would year years
    yet you your
    """.split()
)

#: Words that say the same thing about a figure; mapped before stemming so phrasing does not matter.
SYNONYMS = {
    **dict.fromkeys(
        "rose rise rises rising risen grew grow grows growing grown increase increased increases "
        "increasing jumped jump climbed climb".split(),
        "increase",
    ),
    **dict.fromkeys(
        "fell fall falls falling fallen dropped drop drops declined decline declines decreased "
        "decrease decreases reduced reduce reduces cut cuts lower lowered".split(),
        "decrease",
    ),
    **dict.fromkeys("percent percentage pct".split(), "percent"),
}

_WORD = re.compile(r"[a-z][a-z0-9]*(?:[-'][a-z0-9]+)*")
# A number: 18,400 / 18400 / 2.10 / .5 ; optional unit words that change its meaning.
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(\s?(?:%|percent\b|per cent\b|°\s?C\b))?"
    r"(\s?(?:thousand|million|billion)\b)?",
    re.IGNORECASE,
)
_MULTIPLIERS = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
# Sentence end: . ! ? (maybe then a closing quote or bracket), whitespace, and a capital, digit or quote.
SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[A-Z0-9\"'(\[$])")


def stem(word: str) -> str:
    """A light, deterministic suffix stripper (enough to match ``installations`` with ``installation``)."""
    word = word.removesuffix("'s").removesuffix("'")
    if len(word) > 5 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 6 and word.endswith("ally"):
        return word[:-4]
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 5 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lower-case words (letters first; hyphenated words and possessives kept whole)."""
    return _WORD.findall(text.lower())


def normalise_word(word: str) -> str:
    """The comparable form of one word: synonym first, then stem."""
    return stem(SYNONYMS.get(word, word))


def terms(text: str) -> list[str]:
    """Content terms of ``text`` in order: words minus stopwords, normalised (with repeats)."""
    out = []
    for word in words(text):
        if word in STOPWORDS or len(word) < 2:
            continue
        out.append(normalise_word(word))
    return out


def term_set(text: str) -> frozenset[str]:
    """The distinct content terms of ``text``, without the ``percent`` marker (numbers carry it)."""
    return frozenset(t for t in terms(text) if t != "percent")


@dataclass(frozen=True, order=True)
class Quantity:
    """A number in a sentence, normalised: ``value`` and its unit (``%`` or ``""``)."""

    value: float
    unit: str = ""

    def close_to(self, other: Quantity, tolerance: float = 0.02) -> bool:
        if self.unit != other.unit:
            return False
        scale = max(abs(self.value), abs(other.value), 1e-9)
        return abs(self.value - other.value) / scale <= tolerance

    def __str__(self) -> str:
        text = f"{self.value:,.2f}".rstrip("0").rstrip(".")
        return f"{text} {self.unit}" if self.unit == "°C" else f"{text}{self.unit}"


def is_year(raw: str, unit: str, multiplier: str) -> bool:
    return not unit and not multiplier and raw.isdigit() and len(raw) == 4 and 1900 <= int(raw) <= 2100


def numbers(text: str) -> tuple[list[Quantity], list[int]]:
    """The quantities and the years mentioned in ``text``, each in order of appearance, deduplicated."""
    quantities: list[Quantity] = []
    years: list[int] = []
    for match in _NUMBER.finditer(text):
        raw, unit_text, multiplier = match.group(1), match.group(2) or "", (match.group(3) or "").strip()
        if is_year(raw, unit_text, multiplier):
            if int(raw) not in years:
                years.append(int(raw))
            continue
        value = float(raw.replace(",", "")) * _MULTIPLIERS.get(multiplier.lower(), 1.0)
        unit = unit_text.strip()
        quantity = Quantity(value, "°C" if unit.startswith("°") else "%" if unit else "")
        if quantity not in quantities:
            quantities.append(quantity)
    return quantities, years


def has_number(text: str) -> bool:
    return bool(_NUMBER.search(text))


@functools.lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


_SEGMENTING = threading.Lock()  # a Segmenter keeps the text it works on: one paragraph at a time


@functools.lru_cache(maxsize=4096)
def _paragraph_sentences(flat: str) -> tuple[str, ...]:
    with _SEGMENTING:
        return tuple(s.strip() for s in _segmenter().segment(flat) if s.strip())


def sentences(text: str) -> list[str]:
    """Sentences of a plain-text body, in order (paragraph breaks always end a sentence; headings skipped)."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        kept = (line for line in paragraph.splitlines() if not line.lstrip().startswith("#"))
        flat = " ".join(" ".join(kept).split())
        if not flat:
            continue
        out.extend(_paragraph_sentences(flat))
    return out


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Overlap coefficient: shared terms over the smaller set (a short paraphrase still matches)."""
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


_REPORTING_PREFIX = re.compile(
    r"^[^.;]{0,90}?\b(?:show|shows|showed|shown|found|find|finds|estimate is|estimates|says|said|report|reports|"
    r"reported|notes|noted|complain|complains|claim|claims)\s+that\s+",
    re.IGNORECASE,
)


def claim_core(sentence: str) -> str:
    """The part of a sentence that states its figures: the reporting frame ("X found that ...") and the
    clauses after the last figure (", according to ...", ", driven by ...") removed, so that
    paraphrases of one finding compare well."""
    core = _REPORTING_PREFIX.sub("", sentence.strip())
    segments = [s for s in re.split(r"[,;]\s+", core) if s.strip()]
    last = max((i for i, s in enumerate(segments) if has_number(s)), default=len(segments) - 1)
    return " ".join(segments[: last + 1])


_STATING_VERB = re.compile(r"\b(?:is|are|was|were|has|have|had|became|becomes|remains)\b", re.IGNORECASE)


def states_fact(sentence: str) -> bool:
    """Whether an encyclopedia sentence states a checkable fact: a figure or date, a name (a capitalised
    word past the first), or a definition ("X is a ..."). Fragments of under six words never do."""
    if has_number(sentence):
        return True
    if len(words(sentence)) < 6:
        return False
    later = sentence.split()[1:]
    return any(token[:1].isupper() for token in later) or bool(_STATING_VERB.search(sentence))
