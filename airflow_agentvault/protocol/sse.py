"""
Server-sent events framed from a stream's bytes as they arrive, many at a time (the asyncio runner's framer).

The rules are the WHATWG event-stream interpretation: lines end with CRLF, LF or CR; a blank line
dispatches the event gathered so far, if it has data; ``event`` names it (``message`` by default), every
``data`` line adds a line to its data; comments (``:``), ``id``, ``retry`` and unknown fields are
ignored (nothing here resumes a stream from an event id); an event the stream ends in the middle of is
dropped. The text is UTF-8, always; bytes that are not become U+FFFD, and the event's JSON decides.

httpx-sse applies the same rules one line per call through two async generators, which cost more per
event than all the rest of the async consume path; this frames everything one read brought in a plain
loop, handed to the core as one batch. The blocking runner frames with sseclient-py, to the same events
(``tests/unit/test_sse_runners_agree.py`` names where sseclient-py departs from these rules).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from airflow_agentvault.protocol.exchange import ServerEvent, check_held


class EventFramer:
    """
    Feed it bytes as they arrive; it returns the events each piece completed.

    An event above ``max_bytes``, or more held for one not yet complete (a line without an end, data lines
    without the blank line), raises a ``too_large`` :class:`~airflow_agentvault.protocol.exchange.TransportFailure`.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self._max_bytes = max_bytes
        self._held = 0  # characters held for the unfinished event
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode  # a character cut between reads waits
        self._opening = True  # a byte order mark may open the stream; it is not part of the first line
        self._after_cr = False  # the last piece ended in a CR: an LF opening the next one completes its CRLF
        self._partial: list[str] = []  # the line the last pieces ended in the middle of (no line end in it)
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        return self._feed_text(self._decode(chunk))

    def _feed_text(self, text: str) -> list[ServerEvent]:
        if not text:
            return []
        if self._opening:
            text, self._opening = text.removeprefix("\ufeff"), False
        if self._after_cr and text[:1] == "\n":
            text = text[1:]
        self._after_cr = text.endswith("\r")  # a CR ends its line at once, as browsers do
        if "\n" not in text and "\r" not in text:  # the middle of a long line: kept, not searched again
            self._partial.append(text)
            self._held += len(text)
            check_held(self._held, self._max_bytes)
            return []
        if self._partial:
            text = "".join(self._partial) + text
            self._partial = []
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        last = lines.pop()
        if last:
            self._partial.append(last)
        events = self._frame(lines)
        self._held = len(last) + sum(map(len, self._data)) if last or self._data else 0
        check_held(self._held, self._max_bytes)
        if self._max_bytes is not None and len(text) > self._max_bytes:  # a whole event above the limit?
            for event in events:
                check_held(len(event.data), self._max_bytes)
        return events

    def _frame(self, lines: list[str]) -> list[ServerEvent]:
        events: list[ServerEvent] = []
        event, data = self._event, self._data
        for line in lines:
            if not line:  # dispatch
                if data:
                    events.append(ServerEvent(event or "message", "\n".join(data)))
                    data = []
                event = ""
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
        self._event, self._data = event, data
        return events

    def end(self) -> list[ServerEvent]:
        """The stream ended: an event without its blank line is dropped (a cut character, too)."""
        events = self._feed_text(self._decode(b"", final=True))
        self._partial = []
        return events


def event_batches(chunks: Iterable[bytes], max_bytes: int | None = None) -> Iterator[list[ServerEvent]]:
    """A stream's events, one list per read (often empty) and one at its end (the asyncio runner's loop too)."""
    framer = EventFramer(max_bytes)
    for chunk in chunks:
        yield framer.feed(chunk)
    yield framer.end()
