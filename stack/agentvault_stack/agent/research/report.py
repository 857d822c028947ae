"""Writing and editing the research report (Markdown), deterministically.

``synthesize`` turns the verification result into a first draft with numbered citations (``[1]``, in
order of first use) and a ``## References`` list; ``edit`` applies mechanical editing passes: title
case headings, one number style, no repeated sentences, a summary paragraph on top. Both are pure
functions of their input, so the same claims always give the same report, byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

from agentvault_stack.agent.research.text import SENTENCE_END

LABELS = ("corroborated", "contested", "single-source")
SECTION_TITLES = {
    "corroborated": "Corroborated findings",
    "contested": "Contested findings",
    "single-source": "Single-source claims",
}
REFERENCES_HEADING = "## References"
SUMMARY_PREFIX = "**Summary.**"
READING_PREFIX = "Reading chosen:"

_CITE = re.compile(r"\[(\d+)\]")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SMALL_WORDS = frozenset(
    "a an and as at but by en for from if in into nor of on or per the to via vs with".split()
)


# -- citations ------------------------------------------------------------------------------


def cite_findings(verification: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Findings in report order with citation numbers, and the references those numbers point to.

    A document gets its number when it is first cited (corroborated findings first, then contested,
    then single-source), so numbers appear in order in the text.
    """
    meta: dict[str, dict[str, Any]] = {d["id"]: d for d in verification.get("documents") or [] if "id" in d}
    numbers: dict[str, int] = {}
    references: list[dict[str, Any]] = []

    def cite(doc_id: str, evidence: dict[str, Any]) -> int:
        if doc_id not in numbers:
            numbers[doc_id] = len(numbers) + 1
            info = {**evidence, **meta.get(doc_id, {})}
            reference = {
                "n": numbers[doc_id],
                "id": doc_id,
                "title": info.get("title") or doc_id,
                "source": info.get("source") or "unknown source",
                "date": info.get("date") or "",
            }
            # Where to read it and the license line it needs, only when the document has them.
            reference.update({k: info[k] for k in ("url", "attribution") if info.get(k)})
            references.append(reference)
        return numbers[doc_id]

    findings = []
    for label in LABELS:
        for finding in verification.get("verified") or []:
            if finding.get("label") != label:
                continue
            evidence_by_doc = {e["source_id"]: e for e in finding.get("evidence") or []}
            positions = []
            for position in finding.get("positions") or []:
                cites = [cite(doc, evidence_by_doc.get(doc, {})) for doc in position.get("documents") or []]
                positions.append({**position, "cites": sorted(set(cites))})
            if positions:
                findings.append({"id": finding.get("id"), "label": label, "positions": positions})
    return findings, references


def markers(cites: list[int]) -> str:
    return "".join(f"[{n}]" for n in cites)


def cited_sentence(claim: str, cites: list[int]) -> str:
    """``claim`` with its citation markers before the final full stop."""
    body = claim.strip().rstrip(".")
    return f"{body} {markers(cites)}." if cites else f"{body}."


def references_markdown(references: list[dict[str, Any]]) -> str:
    lines = [REFERENCES_HEADING, ""]
    for ref in references:
        date = f", {ref['date']}" if ref.get("date") else ""
        url = f" {ref['url']}" if ref.get("url") else ""
        lines.append(f"{ref['n']}. {ref['title'].rstrip('.')}. *{ref['source']}*{date}.{url}")
    if not references:
        lines.append("No sources were cited.")
    lines += attribution_lines(references)
    return "\n".join(lines)


def attribution_lines(documents: Any) -> list[str]:
    """The license lines that text quoted from ``documents`` (or references) requires: a blank line, then
    each distinct one, in order; ``[]`` when none needs any (the shipped corpus)."""
    found = [d.get("attribution") for d in documents or [] if isinstance(d, dict) and d.get("attribution")]
    distinct = list(dict.fromkeys(str(a) for a in found))
    return ["", *distinct] if distinct else []


def with_attribution(markdown: str, documents: Any) -> str:
    """``markdown`` ending with the license lines its documents require (text an LLM wrote may drop them)."""
    missing = [line for line in attribution_lines(documents) if line and line not in markdown]
    return f"{markdown.rstrip()}\n\n" + "\n".join(missing) + "\n" if missing else markdown


# -- first draft ----------------------------------------------------------------------------


def finding_line(finding: dict[str, Any]) -> str:
    """One finding as a Markdown bullet."""
    positions = finding["positions"]
    first = positions[0]
    if finding["label"] != "contested" or len(positions) < 2:
        return f"- {cited_sentence(first['claim'], first['cites'])}"
    values = " vs ".join(_distinct_figure(p, positions) for p in positions)
    parts = [f"- **Sources disagree ({values}).** {cited_sentence(first['claim'], first['cites'])}"]
    for other in positions[1:]:
        names = " and ".join(other.get("sources") or ["another source"])
        verb = "reports" if len(other.get("sources") or []) <= 1 else "report"
        parts.append(f"{names} {verb} instead: {cited_sentence(other['claim'], other['cites'])}")
    return " ".join(parts)


def _distinct_figure(position: dict[str, Any], positions: list[dict[str, Any]]) -> str:
    """The first figure of ``position`` that no other position states (what the sources disagree on)."""
    others = {n for p in positions if p is not position for n in p.get("numbers") or []}
    figures = position.get("numbers") or ["?"]
    return next((n for n in figures if n not in others), figures[0])


def draft_body(verification: dict[str, Any], findings: list[dict[str, Any]]) -> str:
    """The report without its references: title, overview line, questions, findings, method."""
    topic = verification.get("topic")
    summary = verification.get("summary") or {}
    documents = verification.get("documents") or []
    sources = sorted({d.get("source") for d in documents if d.get("source")})
    lines = [
        f"# Research report: {topic}" if topic else "# Research report",
        "",
        f"_{len(documents)} documents from {len(sources)} source{'s' * (len(sources) != 1)}; "
        f"{summary.get('total', 0)} findings checked: "
        f"{summary.get('corroborated', 0)} corroborated, {summary.get('contested', 0)} contested, "
        f"{summary.get('single-source', 0)} single-source._",
        "",
    ]
    if verification.get("reading"):  # the topic had several readings; a person (or the default) chose
        lines += [f"{READING_PREFIX} {verification['reading']}.", ""]
    questions = verification.get("questions") or []
    if questions:
        lines += ["## Research questions", ""]
        lines += [f"{i}. {q}" for i, q in enumerate(questions, 1)]
        lines.append("")
    for label in LABELS:
        lines += [f"## {SECTION_TITLES[label]}", ""]
        bullets = [finding_line(f) for f in findings if f["label"] == label]
        lines += bullets or ["None found."]
        lines.append("")
    lines += ["## Method", "", method_text(documents), ""]
    return "\n".join(lines)


def method_text(documents: list[dict[str, Any]]) -> str:
    """How the findings were made: from the synthetic corpus, or from encyclopedia articles (each one a source)."""
    if documents and all(d.get("url") and d.get("attribution") for d in documents):
        sources = sorted({d.get("source") for d in documents if d.get("source")})
        return (
            f"Sentences stating figures, dates or named facts were extracted from the {len(documents)} most "
            f"relevant article summaries of the general-knowledge corpus ({', '.join(sources)}, read offline) and "
            "grouped across articles by shared terms and figures. A finding is corroborated when two or more "
            "articles state it with the same figures, contested when they report different figures, and "
            "single-source when only one article states it."
        )
    return (
        f"Sentences stating figures were extracted from the {len(documents)} most relevant documents of "
        "the reference corpus and grouped across sources by shared terms and figures. A finding is "
        "corroborated when two or more sources report the same figures, contested when sources report "
        "different figures, and single-source when only one source states it. The corpus is synthetic."
    )


def write_report(verification: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The deterministic first draft (Markdown) and its references."""
    findings, references = cite_findings(verification)
    markdown = draft_body(verification, findings) + "\n" + references_markdown(references) + "\n"
    return markdown, references


def with_references(markdown: str, references: list[dict[str, Any]]) -> str:
    """``markdown`` with any references section replaced by ours (for text an LLM wrote)."""
    body = split_references(markdown)[0].rstrip()
    return f"{body}\n\n{references_markdown(references)}\n"


def with_reading(markdown: str, reading: Any) -> str:
    """``markdown`` saying which reading was chosen, below its title (text an LLM wrote may omit it)."""
    if not isinstance(reading, str) or not reading or f"{READING_PREFIX} {reading}" in markdown:
        return markdown
    lines = markdown.split("\n")
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    lines[at:at] = ["", f"{READING_PREFIX} {reading}."]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def split_references(markdown: str) -> tuple[str, str]:
    """``(body, references section)``; the section starts at a heading named References/Sources."""
    match = re.search(r"^#{1,6}\s+(references|sources|bibliography)\s*$", markdown, re.IGNORECASE | re.MULTILINE)
    if not match:
        return markdown, ""
    return markdown[: match.start()], markdown[match.start() :]


# -- editing passes -------------------------------------------------------------------------


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
    """One number style: ``24%`` (not ``24 percent``), ``18,400`` (not ``18400``; years stay), ``4.2 °C``."""
    count = 0

    def sub(pattern: str, repl: Any, text: str) -> str:
        nonlocal count
        new, n = re.subn(pattern, repl, text, flags=re.IGNORECASE)
        count += n
        return new

    def thousands(match: re.Match[str]) -> str:
        nonlocal count
        raw = match.group(1)
        if len(raw) == 4 and 1900 <= int(raw) <= 2100:  # a year
            return raw
        count += 1
        return f"{int(raw):,}"

    line = sub(r"(\d)\s?(?:percent|per cent)\b", r"\1%", line)
    line = sub(r"(\d)\s*°\s*C\b(?<!\d °C)", r"\1 °C", line)
    return re.sub(r"(?<![\d.,\[\w/$-])(\d{4,})(?![\d,]|\.\d|\])", thousands, line), count


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
    text = (
        f"{SUMMARY_PREFIX} This report{about} checks {counts.get('total', 0)} findings: "
        f"{counts.get('corroborated', 0)} are corroborated by two or more sources, "
        f"{counts.get('contested', 0)} are contested and {counts.get('single-source', 0)} rest on a single source."
    )
    top = sections.get("corroborated") or []
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
            f"Made {numbers} number{'s' * (numbers != 1)} consistent (percent signs, thousands separators, °C)."
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
