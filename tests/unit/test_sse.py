"""The asyncio runner's SSE framer: the WHATWG event-stream rules, whatever pieces the bytes arrive in."""

from __future__ import annotations

import pytest
import sseclient  # a second opinion: the library the blocking runner frames with

from airflow_agentvault.protocol.exchange import ServerEvent
from airflow_agentvault.protocol.sse import EventFramer, event_batches


def frame(*pieces: str | bytes) -> list[ServerEvent]:
    framer = EventFramer()
    events = [event for piece in pieces for event in framer.feed(encoded(piece))]
    return events + framer.end()


def encoded(piece: str | bytes) -> bytes:
    return piece.encode() if isinstance(piece, str) else piece


def every_split(text: str) -> list[list[ServerEvent]]:
    """The events of ``text`` fed in two pieces, for every place the cut can fall."""
    data = text.encode()
    return [frame(data[:cut], data[cut:]) for cut in range(len(data) + 1)]


STREAM = "event: task_message\ndata: {\"a\": 1}\n\n: keep-alive\n\ndata: one\ndata: two\n\nevent: task_status\ndata: x\n\n"
EXPECTED = [ServerEvent("task_message", '{"a": 1}'), ServerEvent("message", "one\ntwo"), ServerEvent("task_status", "x")]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_end_frames_the_same_events_wherever_the_text_is_cut(newline):
    text = STREAM.replace("\n", newline)
    assert all(events == EXPECTED for events in every_split(text))


def test_one_byte_at_a_time():
    data = STREAM.replace("\n", "\r\n").encode()
    assert frame(*(data[i:i + 1] for i in range(len(data)))) == EXPECTED


def test_a_character_cut_between_reads_is_whole_in_its_event():
    assert all(events == [ServerEvent("message", "café ☕")] for events in every_split("data: café ☕\n\n"))


def test_bytes_that_are_not_utf8_become_replacement_characters():
    assert frame(b"data: \xff\xfe ok\n\n", b"data: \xe2\x98") == [ServerEvent("message", "\ufffd\ufffd ok")]
    assert frame(b"data: x\xe2\x98\r") == []  # a cut character and a held CR at the end: no blank line came


def test_batches_hold_what_each_read_completed():
    reads = [b"data: 1\n\ndata: 2\n\ndata: ", b"3", b"\n\n", b"data: 4\r", b"\r"]
    assert list(event_batches(reads)) == [
        [ServerEvent("message", "1"), ServerEvent("message", "2")],
        [],
        [ServerEvent("message", "3")],
        [],
        [ServerEvent("message", "4")],  # a CR ends its line at once
        [],  # the end: nothing was left
    ]


def test_events_come_out_as_soon_as_their_blank_line_arrives():
    framer = EventFramer()
    assert framer.feed(b"event: task_message\ndata: 1\n") == []
    assert framer.feed(b"\nevent: task_status\ndata") == [ServerEvent("task_message", "1")]
    assert framer.feed(b": 2\n\n") == [ServerEvent("task_status", "2")]


def test_a_cr_that_ends_a_piece_ends_its_line_at_once_and_an_lf_opening_the_next_completes_it():
    framer = EventFramer()
    assert framer.feed(b"data: 1\r\n\r") == [ServerEvent("message", "1")]
    assert framer.feed(b"\ndata: 2\r\r") == [ServerEvent("message", "2")]
    assert framer.feed(b"\n") == []  # one LF after a CR: nothing more
    assert framer.feed(b"\n") == []  # a second: a blank line with no data gathered
    assert framer.end() == []


def test_a_long_line_in_many_pieces():
    framer = EventFramer()
    assert all(framer.feed(b"x" * 1000) == [] for _ in range(100)) and framer.feed(b"data: ") == []
    assert framer.feed(b"y\n\n") == []  # the field was "xxx...data", not data
    assert frame(b"da", b"ta: ", b"long", b" line", b"\r", b"\n\r\n") == [ServerEvent("message", "long line")]


def test_fields_without_a_space_or_a_value_and_ignored_fields():
    text = "event:named\ndata:tight\ndata\nid: 7\nretry: 10\nunknown: x\n:comment\n\n"
    assert frame(text) == [ServerEvent("named", "tight\n")]


def test_only_one_leading_space_is_removed():
    assert frame("data:  two spaces\n\n") == [ServerEvent("message", " two spaces")]


def test_an_event_without_data_is_not_dispatched_and_its_name_does_not_leak():
    assert frame("event: ping\n\ndata: x\n\n") == [ServerEvent("message", "x")]


def test_an_event_the_stream_ends_in_is_dropped():
    assert frame("data: done\n\ndata: cut off\n") == [ServerEvent("message", "done")]
    assert frame("data: done\n\ndata: no line end") == [ServerEvent("message", "done")]


def test_a_byte_order_mark_opens_the_stream_only():
    assert frame("\ufeffdata: 1\n\n") == [ServerEvent("message", "1")]
    assert frame("", "\ufeff", "data: 1\n\n") == [ServerEvent("message", "1")]
    assert frame("data: \ufeff\n\n") == [ServerEvent("message", "\ufeff")]


def test_frames_as_sseclient_py_does():
    text = STREAM + "data: a\r\ndata:b\r\rid: 1\nevent: e\ndata:  c\n\n" + "event: x\n\n" + "data: end\n\n"
    data = text.encode()
    theirs = [ServerEvent(sse.event, sse.data) for sse in sseclient.SSEClient([data]).events()]
    assert len(theirs) == 6
    assert all(events == theirs for events in every_split(text))
