"""The core's stream loop over batches of events (all that one read of the stream brought)."""

from __future__ import annotations

import json

import pytest

from airflow_agentvault.protocol import errors, operations
from airflow_agentvault.protocol.dialects.agentvault import AgentVaultCodec
from airflow_agentvault.protocol.exchange import AuthHeaders, Close, NextEvents, Open, Response, ServerEvent
from airflow_agentvault.protocol.models import TaskMessageEvent, TaskState, TaskStatusEvent

AGENT = operations.Agent(AgentVaultCodec(), "http://agent.test/a2a/")


def message(text: str) -> ServerEvent:
    data = {"taskId": "t", "message": {"role": "assistant", "parts": [{"type": "text", "content": text}]}}
    return ServerEvent("task_message", json.dumps(data))


def status(state: str) -> ServerEvent:
    return ServerEvent("task_status", json.dumps({"taskId": "t", "state": state}))


def follow(batches: list[list[ServerEvent]], events: list | None = None
           ) -> tuple[list, list[str], list[list[ServerEvent]]]:
    """Run a subscription whose stream reads give ``batches``: the events, the skip notes, the unread batches."""
    events = [] if events is None else events
    notes: list[str] = []
    program = operations.subscribe(AGENT, "t", 5.0, operations.StreamWatch(events.append, notes.append))
    value = None
    try:
        while True:
            effect = program.send(value)
            kind = type(effect)
            if kind is NextEvents:
                value = batches.pop(0) if batches else None
            else:
                value = {AuthHeaders: {}, Open: Response(200, "text/event-stream"), Close: None}[kind]
    except StopIteration:
        pass
    return events, notes, batches


def test_every_event_of_a_batch_is_handled_and_the_first_ending_state_ends_the_stream():
    later = [message("never read")]
    events, notes, unread = follow([
        [message("a"), ServerEvent("message", ""), ServerEvent("mystery", "{}")],
        [status("WORKING"), message("b"), status("COMPLETED"), message("after the end")],
        later,
    ])
    assert [type(e) for e in events] == [TaskMessageEvent, TaskStatusEvent, TaskMessageEvent, TaskStatusEvent]
    assert events[-1].state is TaskState.COMPLETED
    assert notes == ["skipped an event this client does not know (event type 'mystery')"]
    assert unread == [later]


def test_a_damaged_event_in_a_batch_ends_the_stream_after_those_before_it():
    events: list = []
    with pytest.raises(errors.StreamDisconnectedError, match=r"event 2 could not be read"):
        follow([[message("a"), ServerEvent("task_message", "{not json"), message("c")]], events)
    assert [e.message.text for e in events] == ["a"]


def test_a_stream_that_ends_between_batches_is_a_disconnect_counting_its_events():
    with pytest.raises(errors.StreamDisconnectedError, match="ended after 2 events without a terminal state"):
        follow([[message("a")], [message("b")]])
