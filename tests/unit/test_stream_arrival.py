"""
Each event reaches the caller as soon as its bytes arrive, over a real socket, in every body framing.

The server sends one small event, then holds the rest back until the test has that event (a bounded
wait). A client that waited for more bytes than the event (a fixed-size read) would still be waiting
when the server gives up and closes: the stream would then end without its terminal state.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.models import TaskMessageEvent, TaskState

TASK = "t1"
HOLD_BACK_SECONDS = 10.0  # the most the server waits for the test before it gives up


def event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


FIRST = event("task_message", {"taskId": TASK, "message": {"role": "assistant",
                                                           "parts": [{"type": "text", "content": "hi"}]}})
REST = event("task_status", {"taskId": TASK, "state": "COMPLETED"})


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


#: framing -> (response head, the first event as sent, the rest as sent)
FRAMINGS = {
    "content-length": (f"Content-Length: {len(FIRST) + len(REST)}\r\n", FIRST, REST),
    "chunked": ("Transfer-Encoding: chunked\r\n", chunk(FIRST), chunk(REST) + b"0\r\n\r\n"),
    "close-delimited": ("Connection: close\r\n", FIRST, REST),
}


class HoldingServer:
    """One connection: answers with the first event, and sends the rest once ``release`` is set."""

    def __init__(self, framing: str) -> None:
        self.head, self.first, self.rest = FRAMINGS[framing]
        self.release = threading.Event()
        self.released = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/a2a/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(HOLD_BACK_SECONDS)
        conn, _ = self.listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._read_request(conn.makefile("rb"))
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{self.head}\r\n".encode()
                         + self.first)
            self.released = self.release.wait(HOLD_BACK_SECONDS)
            if self.released:
                conn.sendall(self.rest)

    @staticmethod
    def _read_request(reader) -> None:
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        reader.read(length)

    def close(self) -> None:
        self.release.set()
        self.thread.join(HOLD_BACK_SECONDS)
        self.listener.close()


@pytest.fixture(params=list(FRAMINGS))
def server(request):
    server = HoldingServer(request.param)
    yield server
    server.close()


def test_first_event_is_smaller_than_a_fixed_size_read():
    assert len(FIRST) < 128  # iterating a requests response reads 128 bytes at a time


def test_blocking_client_hands_over_each_event_as_it_arrives(server):
    events = AgentClient(server.url, read_timeout=30).subscribe(TASK)
    first = next(events)
    server.release.set()
    rest = list(events)
    assert isinstance(first, TaskMessageEvent)
    assert server.released
    assert [e.state for e in rest] == [TaskState.COMPLETED]


async def test_async_client_hands_over_each_event_as_it_arrives(server):
    async with AsyncAgentClient(server.url, read_timeout=30) as client:
        events = client.subscribe(TASK)
        first = await events.__anext__()
        server.release.set()
        rest = [e async for e in events]
    assert isinstance(first, TaskMessageEvent)
    assert server.released
    assert [e.state for e in rest] == [TaskState.COMPLETED]
