"""Writing the research report (Markdown), deterministically: the synthesize stage's draft.

``synthesize`` turns the verification result into a first draft: the findings in paragraphs by theme
(:mod:`.synthesis`) with numbered citations (``[1]``, in order of first use), a Method section naming
the corpus used, and a ``## References`` list; the edit stage's passes are :mod:`.editing`. Both
are pure functions of their input, so the same claims always give the same report, byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

from agentvault_stack.agent.research.synthesis import paragraph, theme_title, themes

LABELS = ("corroborated", "contested", "single-source")
REFERENCES_HEADING = "## References"
FINDINGS_HEADING = "Findings"
READING_PREFIX = "Reading chosen:"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 finding``, ``3 findings``: a count with its noun in the right number."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


# -- citations ------------------------------------------------------------------------------


def cite_findings(verification: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Findings in report order (by theme, see :mod:`.synthesis`) with citation numbers, and the
    references those numbers point to. A document gets its number when it is first cited, so numbers
    appear in order in the text.
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

    by_id = {str(f.get("id")): f for f in verification.get("verified") or [] if isinstance(f, dict)}
    findings = []
    for theme, ids in themes(verification):
        for finding in (by_id[i] for i in ids):
            evidence_by_doc = {e["source_id"]: e for e in finding.get("evidence") or []}
            positions = []
            for position in finding.get("positions") or []:
                cites = [cite(doc, evidence_by_doc.get(doc, {})) for doc in position.get("documents") or []]
                positions.append({**position, "cites": sorted(set(cites))})
            if positions and finding.get("label") in LABELS:
                findings.append({"id": finding.get("id"), "label": finding["label"], "theme": theme,
                                 "positions": positions})
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
    return f"- {finding_text(finding)}"


def finding_text(finding: dict[str, Any]) -> str:
    """One finding as sentences with their citations (a contested one says where sources disagree)."""
    positions = finding["positions"]
    first = positions[0]
    if finding["label"] != "contested" or len(positions) < 2:
        return cited_sentence(first['claim'], first['cites'])
    values = " vs ".join(_distinct_figure(p, positions) for p in positions)
    parts = [f"**Sources disagree ({values}).** {cited_sentence(first['claim'], first['cites'])}"]
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
    # An encyclopedia article is a source of its own (as in the findings), other documents count by source.
    sources = {f"{d.get('source')}: {d.get('title')}" if d.get("url") else d.get("source") for d in documents}
    sources.discard(None)
    lines = [
        f"# Research report: {topic}" if topic else "# Research report",
        "",
        f"_{counted(len(documents), 'document')} read from {counted(len(sources), 'source')}, "
        f"{len({d for f in findings for p in f['positions'] for d in p.get('documents') or []})} of them cited; "
        f"{counted(int(summary.get('total', 0)), 'finding')} checked: "
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
    lines += [f"## {FINDINGS_HEADING}", ""]
    for theme in dict.fromkeys(f["theme"] for f in findings):
        members = [f for f in findings if f["theme"] == theme]
        lines += [f"### {theme_title(theme, str(topic or ''))}", "", paragraph(members, finding_text), ""]
    if not findings:
        lines += ["No findings.", ""]
    lines += ["## Method", "", method_text(documents, verification.get("collection")), ""]
    return "\n".join(lines)


def method_text(documents: list[dict[str, Any]], collection: Any = None) -> str:
    """How the findings were made, naming the corpus actually searched (see :func:`.planning.collection`)."""
    kind, name = (collection.get("kind"), collection.get("name")) if isinstance(collection, dict) else (None, None)
    if kind is None and documents and all(d.get("url") and d.get("attribution") for d in documents):
        kind = "general-knowledge"
    n = len(documents)
    checks = (
        "grouped across sources by shared terms and figures and written up by theme. A finding is "
        "corroborated when two or more sources state it with the same figures, contested when they report "
        "different figures, and single-source when only one source states it."
    )
    if kind == "general-knowledge":
        return (
            "Sentences stating figures, dates or named facts were extracted from "
            f"{counted(n, 'article summary', 'article summaries')} "
            "of the general-knowledge corpus (Wikipedia's article summaries, read offline): the articles "
            "about the topic, found by BM25 ranking with a boost for titles naming it; from an article that "
            "is not itself on the topic, only the sentences naming the topic were used. Each article counts "
            f"as a source of its own. The sentences were {checks}"
        )
    if kind == "synthetic":
        where = "the shipped sample corpus, whose documents are synthetic (invented for tests and demos)"
    elif kind == "folder":
        where = f"your folder `{name}`"
    else:
        where = "the documents given to the pipeline"
    return (
        f"Sentences stating figures were extracted from the {counted(n, 'most relevant document', 'most relevant documents')} "
        f"(BM25 ranking) of {where}, then {checks}"
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
