"""
An agent that misbehaves with sizes and time, on a loopback port: answers and events that never end.

One AgentVault JSON-RPC endpoint per behaviour, ``/<behaviour>/``:

* ``trickle``: the stream sends one byte every 20 ms and never completes an event;
* ``endless``: the stream sends a WORKING status event every 5 ms, forever;
* ``huge-event``: the stream sends one event whose data never ends; ``tasks/get`` says WORKING once, then
  COMPLETED;
* ``huge-answer``: ``tasks/get`` answers a body that never ends.

``tasks/get`` answers WORKING otherwise. Bodies that never end are close-delimited (HTTP/1.0): they end when
the client hangs up, or when the server stops.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK = b"x" * 65536


class MisbehavingAgent:
    """The server in a daemon thread; ``calls`` counts each behaviour's JSON-RPC methods."""

    def __init__(self) -> None:
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self.stopping = threading.Event()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                behaviour = self.path.strip("/")
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                method = request["method"]
                agent.calls[behaviour, method] += 1
                try:
                    agent.answer(self, behaviour, method, agent.calls[behaviour, method])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up: what it should do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="misbehaving-agent", daemon=True)

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{behaviour}/"

    def __enter__(self) -> MisbehavingAgent:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def answer(self, handler: BaseHTTPRequestHandler, behaviour: str, method: str, count: int) -> None:
        if method == "tasks/get":
            if behaviour == "huge-answer":
                self.head(handler, "application/json")
                handler.wfile.write(b'{"jsonrpc":"2.0","id":"1","result":{"id":"t","state":"WORKING","metadata":{"x":"')
                self.forever(handler, lambda: CHUNK)
                return
            state = "COMPLETED" if behaviour == "huge-event" and count > 1 else "WORKING"
            body = json.dumps({"jsonrpc": "2.0", "id": "1", "result": {
                "id": "t", "state": state, "messages": [], "artifacts": []}}).encode()
            self.head(handler, "application/json", len(body))
            handler.wfile.write(body)
            return
        self.head(handler, "text/event-stream")
        working = b'event: task_status\ndata: {"taskId":"t","state":"WORKING"}\n\n'
        if behaviour == "trickle":
            handler.wfile.write(b"event: task_status\ndata: ")
            self.forever(handler, lambda: b"x", pause=0.02)
        elif behaviour == "endless":
            self.forever(handler, lambda: working, pause=0.005)
        else:  # huge-event
            handler.wfile.write(b"event: task_message\ndata: ")
            self.forever(handler, lambda: CHUNK)

    @staticmethod
    def head(handler: BaseHTTPRequestHandler, content_type: str, length: int | None = None) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        handler.end_headers()

    def forever(self, handler: BaseHTTPRequestHandler, piece: Any, pause: float = 0.0) -> None:
        while not self.stopping.is_set():
            handler.wfile.write(piece())
            handler.wfile.flush()
            if pause:
                time.sleep(pause)  # the misbehaviour itself: a slow writer
