"""Access to the raw A2A captures (a2a-sdk 1.3.0, and 0.3.26 in files 18-19) shipped with the tests.

The files are copies of ``shared/reference/wire/a2a``: HTTP responses as received (status line, headers,
blank line, body), some files holding several, each after a ``== <what was done>`` line; a few hold only
the JSON bodies. These helpers cut them up without changing a byte of a body.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.async_client import AsyncAgentClient
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects import codec_for

A2A_WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "wire" / "a2a"


def raw(name: str) -> bytes:
    return (A2A_WIRE / name).read_bytes()


def sections(name: str) -> dict[str, bytes]:
    """``== title`` -> the bytes after that line, up to the next ``== `` line (trailing newline dropped)."""
    found: dict[str, bytes] = {}
    parts = re.split(rb"(?m)^== (.*)$", raw(name))
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        found[title.decode().strip()] = body.lstrip(b"\r\n").rstrip(b"\n")
    return found


def http(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one captured HTTP response (CRLF or LF line ends)."""
    head, _, body = re.split(rb"(\r?\n\r?\n)", data, maxsplit=1)
    lines = head.decode().splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip()] = value.strip()
    return status, headers, body


def body(name: str) -> bytes:
    """The body of a file holding one HTTP response."""
    return http(raw(name))[2]


def event_stream(data: bytes) -> bytes:
    """The body of a captured ``text/event-stream`` response (headers cut off if present)."""
    if data.startswith(b"HTTP/"):
        return http(data)[2]
    return data


def json_line(section: bytes) -> bytes:
    """The first line of a section that is a JSON object (sections that hold only a body)."""
    for line in section.splitlines():
        if line.startswith(b"{"):
            return line
    raise ValueError("no JSON line in the section")


# -- one harness for the sync (requests-mock) and the async (respx) client ----------------------------------

Reply = tuple[int, dict[str, str], bytes]

JSON = {"Content-Type": "application/json"}
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


class Wire:
    """Answers HTTP calls with captured bytes, for the sync client (requests-mock) or the async one (respx).

    The same test body runs against both: ``await wire.call("get", "t1")`` calls the method of the
    client of this mode (the sync one directly, the async one awaited); ``subscribe`` collects the events
    (and returns the error that ended them, if any).
    """

    def __init__(self, mode: str, requests_mock, respx_mock) -> None:
        self.mode = mode
        self.requests_mock = requests_mock
        self.respx_mock = respx_mock
        self.client = None

    def reply(self, method: str, url: str, *replies: Reply) -> None:
        """Answer ``method url`` with ``replies`` in turn (the last one repeats)."""
        if self.mode == "sync":
            self.requests_mock.register_uri(
                method, url, [{"status_code": s, "headers": h, "content": b} for s, h, b in replies]
            )
        else:
            responses = [httpx.Response(s, headers=h, content=b) for s, h, b in replies]

            def side_effect(request, _responses=responses):
                return _responses.pop(0) if len(_responses) > 1 else _responses[0]

            self.respx_mock.route(method=method, url=url).mock(side_effect=side_effect)

    def connect(self, dialect: str, url: str, **kwargs: Any):
        kwargs.setdefault("connect_timeout", 1)
        kwargs.setdefault("read_timeout", 2)
        factory = AgentClient if self.mode == "sync" else AsyncAgentClient
        self.client = factory(url, codec=codec_for(dialect), **kwargs)
        return self.client

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, name)(*args, **kwargs)
        return await result if self.mode == "async" else result

    async def subscribe(self, task_id: str, **kwargs: Any) -> tuple[list, errors.AgentVaultError | None]:
        events: list = []
        try:
            if self.mode == "sync":
                for event in self.client.subscribe(task_id, **kwargs):
                    events.append(event)
            else:
                async for event in self.client.subscribe(task_id, **kwargs):
                    events.append(event)
        except errors.AgentVaultError as exc:
            return events, exc
        return events, None

    def sent(self) -> list[dict[str, Any]]:
        """The requests made: method, url, headers (lower-case names) and JSON body (None without one)."""
        made = []
        if self.mode == "sync":
            for request in self.requests_mock.request_history:
                content = request.body
                made.append({"method": request.method, "url": request.url, "headers": _lower(request.headers),
                             "json": json.loads(content) if content else None})
        else:
            for call in self.respx_mock.calls:
                request = call.request
                made.append({"method": request.method, "url": str(request.url), "headers": _lower(request.headers),
                             "json": json.loads(request.content) if request.content else None})
        return made

    async def aclose(self) -> None:
        if self.mode == "async" and self.client is not None:
            await self.client.aclose()


def _lower(headers: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}
