"""BM25 ranking by ``bm25s`` (sparse matrices), over this package's own content terms.

Why a library: its scoring is tested and maintained, and it indexes ~10,000 summaries in well under a
second. Why our own tokens: the research stages compare words through :func:`.text.terms` (stopwords
out, synonyms and a light stem), so ranking must see the same terms the claims are matched on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import bm25s


class Ranker:
    """A BM25 index (Lucene's variant) over documents given as lists of terms."""

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        self.size = len(documents)
        self._lock = threading.Lock()  # scoring reuses the index's buffers: one query at a time
        self._index: bm25s.BM25 | None = None
        if self.size:
            self._index = bm25s.BM25(dtype="float64")
            # An empty document still needs a token, or bm25s would drop it and shift the numbering.
            self._index.index([list(d) or [""] for d in documents], show_progress=False)

    def scores(self, query: Sequence[str]) -> list[float]:
        """Each document's score for ``query`` (in document order); all 0 for an empty query."""
        wanted = list(dict.fromkeys(t for t in query if t))
        if self._index is None or not wanted:
            return [0.0] * self.size
        with self._lock:
            found = self._index.get_scores(wanted)
        return [float(s) for s in found]
