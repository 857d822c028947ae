"""
The blocking runner (sseclient-py, :func:`client.event_batches`) and the asyncio runner's framer
(:mod:`sse`) frame the same events from the same bytes, wherever the reads cut them.

Known differences, where sseclient-py departs from the WHATWG rules; each ends no task (the stream is
an optimisation, tasks/get is the truth), so the blocking runner keeps sseclient-py's reading:

* bytes that are not UTF-8: the framer makes them U+FFFD and the event's JSON decides; sseclient-py
  raises, and the blocking runner ends the stream as a disconnect after the events before it.
* a byte order mark opening the stream: the framer drops it; sseclient-py reads it into the first
  field's name, so that field is ignored (the first event loses its name or its data).
* a blank line whose two line ends differ (LF then CRLF, CRLF then CR): the framer ends the event there;
  sseclient-py sees no blank line and joins the event to the next (whose JSON then fails: a disconnect).
* a CRLF cut between reads after its CR: the framer ends the line at the CR, sseclient-py at the LF, one
  read later (the LF is already on its way): the same events, in the next batch.
* an event the stream ends in (no blank line after it): the framer drops it; sseclient-py dispatches it
  at the end (cut JSON then fails: a disconnect; whole JSON is a real event, which tasks/get confirms).
"""

from __future__ import annotations

import pytest

from airflow_agentvault.protocol import client, sse
from airflow_agentvault.protocol.exchange import ServerEvent


def blocking(reads: list[bytes]) -> list[list[ServerEvent]]:
    return list(client.event_batches(reads))


def asyncio_framer(reads: list[bytes]) -> list[list[ServerEvent]]:
    return list(sse.event_batches(reads))


def flat(batches: list[list[ServerEvent]]) -> list[ServerEvent]:
    return [event for batch in batches for event in batch]


def cuts(data: bytes) -> list[list[bytes]]:
    """``data`` as the reads of a stream: whole, cut in two at every byte boundary, and one byte at a time."""
    return [[data]] + [[data[:at], data[at:]] for at in range(1, len(data))] + [[data[i:i + 1] for i in range(len(data))]]


WELL_FORMED = {
    "named events": b'event: task_message\ndata: {"a": 1}\n\nevent: task_status\ndata: {"s": "done"}\n\n',
    "multi-line data": b"data: one\ndata: two\n\ndata:tight\n\n",
    "crlf": b"event: e\r\ndata: x\r\n\r\ndata: y\r\n\r\n",
    "cr": b"event: e\rdata: x\r\rdata: y\r\r",
    "utf-8 cut anywhere": "data: café ☕ 𝄞\n\n".encode(),
    "only one space stripped": b"data:  two\n\n",
}
DAMAGED = {
    "missing data": b"event: ping\n\nevent: named\ndata\n\ndata: x\n\n",
    "comment lines": b": keep-alive\n\n:\ndata: a\n: inside\n\n: trailing\n",
    "retry and id fields": b"id: 7\nretry: 10\ndata: a\n\nid\nretry: x\nunknown: y\ndata: b\n\n",
    "no event after the last blank line": b"data: done\n\nevent: e\n: cut off\n",
    "blank-looking lines": b"data: a\n   \n\n",
    "field without colon": b"event\ndata: a\n\n",
}


@pytest.mark.parametrize("data", list({**WELL_FORMED, **DAMAGED}.values()), ids=list({**WELL_FORMED, **DAMAGED}))
def test_the_same_events_in_the_same_batches_wherever_the_reads_cut(data):
    for reads in cuts(data):
        ours, theirs = blocking(reads), asyncio_framer(reads)
        if b"\r\n" in data:  # a cut after a CR: the event comes one read later (module doc)
            assert flat(ours) == flat(theirs), reads
        else:
            assert ours == theirs, reads
    assert flat(blocking([data])) != []


def test_events_come_out_with_the_read_that_completes_them():
    reads = [b"data: 1\n\ndata: 2\n\ndata: ", b"3", b"\n", b"\n", b": ping\n\n", b"data: 4\n\n"]
    assert blocking(reads) == asyncio_framer(reads) == [
        [ServerEvent("message", "1"), ServerEvent("message", "2")], [], [], [ServerEvent("message", "3")], [],
        [ServerEvent("message", "4")], []]


def test_a_long_event_over_many_reads():
    reads = [b"data: "] + [b"x" * 1000] * 100 + [b"\n", b"\n"]
    assert blocking(reads) == asyncio_framer(reads) == [[]] * 102 + [[ServerEvent("message", "x" * 100_000)], []]


# -- the known differences (module doc) ------------------------------------------------------------------


def test_not_utf8_ends_the_blocking_stream_after_the_events_before_it():
    data = b"data: 1\n\ndata: \xff\n\ndata: 3\n\n"
    for reads in cuts(data):
        assert flat(asyncio_framer(reads)) == [ServerEvent("message", "1"), ServerEvent("message", "\ufffd"),
                                               ServerEvent("message", "3")]
        batches = client.event_batches(reads)
        before: list[ServerEvent] = []
        with pytest.raises(UnicodeDecodeError):
            for batch in batches:
                before += batch
        assert before == [ServerEvent("message", "1")], reads


def test_a_byte_order_mark_costs_the_blocking_runner_the_first_field():
    data = "\ufeffdata: 1\n\nevent: e\ndata: 2\n\n".encode()
    for reads in cuts(data):
        assert flat(asyncio_framer(reads)) == [ServerEvent("message", "1"), ServerEvent("e", "2")]
        assert flat(blocking(reads)) == [ServerEvent("e", "2")], reads


@pytest.mark.parametrize("end", [b"\n", b"", b"\r\n\r"])
def test_the_blocking_runner_dispatches_the_event_the_stream_ends_in(end):
    data = b"data: done\n\ndata: cut off" + end
    for reads in cuts(data):
        assert flat(asyncio_framer(reads)) == [ServerEvent("message", "done")] + (
            [ServerEvent("message", "cut off")] if end == b"\r\n\r" else [])  # a CR ends the line: whole
        assert flat(blocking(reads)) == [ServerEvent("message", "done"), ServerEvent("message", "cut off")], reads


@pytest.mark.parametrize("blank", [b"\n\r\n", b"\r\n\r"])
def test_a_blank_line_of_two_kinds_of_line_end_joins_events_in_the_blocking_runner(blank):
    data = b"data: a" + blank + b"data: b\n\n"
    for reads in cuts(data):
        assert flat(asyncio_framer(reads)) == [ServerEvent("message", "a"), ServerEvent("message", "b")]
        assert flat(blocking(reads)) == [ServerEvent("message", "a\nb")], reads
