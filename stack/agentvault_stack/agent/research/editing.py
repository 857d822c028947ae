"""Editing the research report (Markdown), deterministically: the edit stage's passes.

Title case headings, one unit style (digits as the sources wrote them), no repeated sentences, a summary paragraph on top; a pure
function of the draft (:mod:`.report`) and the verification, so the same draft always edits the same.
"""

from __future__ import annotations

import re
from typing import Any

from agentvault_stack.agent.research.report import LABELS, counted
from agentvault_stack.agent.research.text import SENTENCE_END

SUMMARY_PREFIX = "**Summary.**"
_CITE = re.compile(r"\[(\d+)\]")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SMALL_WORDS = frozenset(
    "a an and as at but by en for from if in into nor of on or per the to via vs with".split()
)


def title_case(text: str) -> str:
    """Title case that keeps small words low and leaves mixed-case words (``Valdora's``, ``CO2``) alone."""
    tokens = text.split(" ")
    out = []
    for index, token in enumerate(tokens):
        first_or_last = index == 0 or index == len(tokens) - 1 or tokens[index - 1].endswith(":")
        parts = token.split("-")
        fixed = []
        for part_index, part in enumerate(parts):
            lead = re.match(r"^[^A-Za-z]*", part).group(0)
            word = part[len(lead) :]
            small = word.lower() in _SMALL_WORDS and not (first_or_last and part_index == 0)
            if word and word == word.lower() and not small:
                word = word[0].upper() + word[1:]
            elif word and small and part_index == 0 and not first_or_last:
                word = word.lower() if word[0].isupper() and word[1:] == word[1:].lower() else word
            fixed.append(lead + word)
        out.append("-".join(fixed))
    return " ".join(out)


def _number_style(line: str) -> tuple[str, int]:
    """One unit style: ``24%`` (not ``24 percent``), ``4.2 °C``. The digits stay exactly as the source wrote
    them: no thousands separator is added, so years ("1789") and figures can be found in the source verbatim."""
    count = 0

    def sub(pattern: str, repl: Any, text: str) -> str:
        nonlocal count
        new, n = re.subn(pattern, repl, text, flags=re.IGNORECASE)
        count += n
        return new

    line = sub(r"(\d)\s?(?:percent|per cent)\b", r"\1%", line)
    return sub(r"(\d)\s*°\s*C\b(?<!\d °C)", r"\1 °C", line), count


def _sentence_key(sentence: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9%]+", " ", _CITE.sub("", sentence).lower()).split())


def _add_cites(sentence: str, cites: list[str]) -> str:
    present = set(_CITE.findall(sentence))
    missing = [c for c in cites if c not in present]
    if not missing:
        return sentence
    end = "." if sentence.rstrip().endswith(".") else ""
    body = sentence.rstrip().rstrip(".")
    return f"{body}{''.join(f'[{c}]' for c in missing)}{end}"


def _dedupe(lines: list[str], editable: list[bool]) -> tuple[list[str], int]:
    """Drop sentences already said earlier; their citation markers move to the first occurrence."""
    split: list[tuple[str, list[str]] | None] = []
    seen: dict[str, tuple[int, int]] = {}
    removed = 0
    for index, line in enumerate(lines):
        if not editable[index] or not line.strip():
            split.append(None)
            continue
        prefix = re.match(r"^(\s*(?:[-*+]|\d+\.)\s+|\s*)", line).group(0)
        sentences = [s for s in SENTENCE_END.split(line[len(prefix) :]) if s.strip()]
        kept: list[str] = []
        for sentence in sentences:
            key = _sentence_key(sentence)
            if len(key.split()) < 5 or key not in seen:
                if len(key.split()) >= 5:
                    seen[key] = (index, len(kept))
                kept.append(sentence)
                continue
            removed += 1
            first_line, first_pos = seen[key]
            target = split[first_line] if first_line != index else (prefix, kept)
            if target is not None:
                target[1][first_pos] = _add_cites(target[1][first_pos], _CITE.findall(sentence))
        split.append((prefix, kept))
    out = []
    for index, line in enumerate(lines):
        entry = split[index]
        if entry is None:
            out.append(line)
        elif entry[1]:
            out.append(entry[0] + " ".join(entry[1]))
    return out, removed


def _summary_paragraph(markdown: str, verification: dict[str, Any] | None) -> str:
    """The summary: counts from the verification (else from the sections) and the top finding."""
    counts = dict((verification or {}).get("summary") or {})
    sections = _section_bullets(markdown)
    if not counts:
        counts = {label: len(sections.get(label, [])) for label in LABELS}
        counts["total"] = sum(counts.values())
    topic = (verification or {}).get("topic")
    about = f" on {topic}" if topic else ""
    corroborated, contested, single = (int(counts.get(k, 0)) for k in LABELS)
    text = (
        f"{SUMMARY_PREFIX} This report{about} checks {counted(int(counts.get('total', 0)), 'finding')}: "
        f"{corroborated} {'is' if corroborated == 1 else 'are'} corroborated by two or more sources, "
        f"{contested} {'is' if contested == 1 else 'are'} contested and "
        f"{single} {'rests' if single == 1 else 'rest'} on a single source."
    )
    verified = (verification or {}).get("verified") or []
    top = [str(f["claim"]) for f in verified if isinstance(f, dict) and f.get("label") == "corroborated"
           and f.get("claim")] or sections.get("corroborated") or []
    if top:
        first = SENTENCE_END.split(_CITE.sub("", top[0]).strip())[0].strip().rstrip(".")
        first = re.sub(r"\s+", " ", first).strip()
        text += f" The best-supported finding: {first}."
    return text


def _section_bullets(markdown: str) -> dict[str, list[str]]:
    """Bullet texts under the corroborated / contested / single-source headings."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        if heading:
            title = heading.group(2).lower()
            current = next((label for label in LABELS if title.startswith(label.split("-")[0])), None)
            continue
        if current and re.match(r"^\s*[-*+]\s+", line):
            out.setdefault(current, []).append(re.sub(r"^\s*[-*+]\s+|\*\*[^*]*\*\*\s*", "", line))
    return out


def word_count(markdown: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][\w'%.,°$-]*", markdown))


def edit_report(markdown: str, verification: dict[str, Any] | None = None) -> tuple[str, list[str]]:
    """The edited report and a changelog (one line per kind of edit that changed something)."""
    changes: list[str] = []
    before = word_count(markdown)
    lines = [line.rstrip() for line in markdown.replace("\r\n", "\n").split("\n")]

    # Where the references start: their lines are left as written (titles, dates, ids).
    ref_start = next(
        (i for i, line in enumerate(lines) if re.match(r"^#{1,6}\s+references\s*$", line, re.I)), len(lines)
    )

    headings = 0
    for index, line in enumerate(lines):
        match = _HEADING.match(line)
        if match:
            new = f"{match.group(1)} {title_case(match.group(2))}"
            if new != line:
                lines[index], headings = new, headings + 1
    if headings:
        changes.append(f"Title-cased {headings} heading{'s' * (headings != 1)}.")

    numbers = 0
    for index in range(ref_start):
        if not _HEADING.match(lines[index]):
            lines[index], n = _number_style(lines[index])
            numbers += n
    if numbers:
        changes.append(
            f"Made {numbers} number{'s' * (numbers != 1)} consistent (percent signs, °C)."
        )

    editable = [i < ref_start and not _HEADING.match(line) and not line.startswith("_") for i, line in enumerate(lines)]
    lines, removed = _dedupe(lines, editable)
    if removed:
        changes.append(f"Removed {removed} repeated sentence{'s' * (removed != 1)} (their citations kept).")

    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"

    summary = _summary_paragraph(text, verification)
    out_lines = text.split("\n")
    existing = next((i for i, line in enumerate(out_lines) if line.startswith(SUMMARY_PREFIX)), None)
    if existing is not None:
        if out_lines[existing] != summary:
            out_lines[existing] = summary
            changes.append("Updated the summary paragraph.")
    else:
        title = next((i for i, line in enumerate(out_lines) if line.startswith("# ")), None)
        at = 0 if title is None else title + 1
        out_lines[at:at] = (["", summary] if title is not None else [summary, ""])
        changes.append("Added a summary paragraph at the top.")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out_lines)).strip() + "\n"
    after = word_count(text)
    changes.append(f"Word count {before} -> {after}.")
    return text, changes
