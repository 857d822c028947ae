"""Run the reference agent under uvicorn in a background thread, for tests and the CLI.

Why: tests need a real HTTP server on loopback (real sockets, chunked SSE, 307 redirects) without
a subprocess per test. The listening socket is bound in the caller's thread, so the port is known
(and a bind error raised) before the server thread starts; ``start`` then waits, bounded, for
uvicorn's ``started`` flag, and ``stop`` ends open streams first so shutdown stays fast.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType

import uvicorn

from agentvault_stack.agent.app import DEFAULT_AGENT_ID, DEFAULT_NAME, ReferenceAgent, create_app
from agentvault_stack.agent.behaviour import AgentBehaviour
from agentvault_stack.agent.contract import Skill


class ReferenceAgentServer:
    """A reference AgentVault agent serving on ``host:port`` (port 0 picks a free one).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        behaviour: AgentBehaviour | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = DEFAULT_NAME,
        agent_id: str = DEFAULT_AGENT_ID,
        startup_timeout: float = 10.0,
        shutdown_timeout: float = 5.0,
        log_level: str = "warning",
        skill: Skill | None = None,
        task_store: str | None = None,
    ) -> None:
        self.host = host
        self.app = create_app(behaviour, name=name, agent_id=agent_id, skill=skill, task_store=task_store)
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._requested_port = port
        self._config = uvicorn.Config(
            self.app,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=max(shutdown_timeout / 2, 0.5),
        )
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self.port: int | None = None

    # -- addresses --

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``."""
        if self.port is None:
            raise RuntimeError("ReferenceAgentServer is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def rpc_url(self) -> str:
        """The JSON-RPC endpoint (with its trailing slash)."""
        return f"{self.url}/a2a/"

    @property
    def card_url(self) -> str:
        return f"{self.url}/agent-card.json"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def agent(self) -> ReferenceAgent:
        """The running agent's state (behaviour, store, counters)."""
        return self.app.state.agent

    def set_behaviour(self, behaviour: AgentBehaviour) -> None:
        """Replace the default behaviour of new tasks (same as ``POST /_control/behaviour``)."""
        self.agent.behaviour = behaviour  # one attribute store: atomic for the server thread

    # -- life cycle --

    def start(self) -> ReferenceAgentServer:
        """Bind, start serving in a daemon thread, and wait until uvicorn has started."""
        if self._thread is not None:
            raise RuntimeError("ReferenceAgentServer already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose protocol says TCP.
        # Without it a keep-alive response written in two parts waits ~40 ms for the client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._run, name=f"reference-agent-{self.port}", daemon=True)
        self._thread.start()

        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._cleanup()
                raise RuntimeError(f"reference agent on port {self.port} failed to start") from self._failure
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"reference agent on port {self.port} not started after {self.startup_timeout}s"
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Close open streams, ask uvicorn to exit, and join the thread (bounded)."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None or thread is None:
            return
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.agent.store.close_streams)
            except RuntimeError:  # loop closed meanwhile
                pass
        server.should_exit = True
        thread.join(self.shutdown_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(self.shutdown_timeout)
        self._cleanup()
        if thread.is_alive():
            raise TimeoutError(f"reference agent on port {self.port} did not stop")

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._loop = self._socket = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start(); SystemExit included
            self._failure = exc

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        assert self._server is not None and self._socket is not None
        await self._server.serve(sockets=[self._socket])

    def __enter__(self) -> ReferenceAgentServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.port is not None else "not started"
        return f"<ReferenceAgentServer {where}>"
