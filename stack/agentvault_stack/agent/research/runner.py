"""Run the seven research agents on loopback: one :class:`ReferenceAgentServer` per stage, one process.

Each agent is the reference agent (same wire format, same behaviour switches) with its stage's
skill; its card's ``humanReadableId`` is ``research/<stage>``.
"""

from __future__ import annotations

import threading
from types import TracebackType

from agentvault_stack.agent.behaviour import AgentBehaviour
from agentvault_stack.agent.research.documents import Corpus
from agentvault_stack.agent.research.inputs import STAGE_NAMES
from agentvault_stack.agent.research.stages import research_skill
from agentvault_stack.agent.server import ReferenceAgentServer

DEFAULT_WORK_SECONDS = 0.2


def agent_id(stage: str) -> str:
    return f"research/{stage}"


def agent_name(stage: str) -> str:
    return f"Research agent: {stage.replace('_', ' ')}"


class ResearchAgents:
    """The seven research agents; ``urls`` maps each stage to its JSON-RPC URL once started."""

    def __init__(self, servers: dict[str, ReferenceAgentServer]) -> None:
        self.servers = servers

    @property
    def urls(self) -> dict[str, str]:
        """``{stage: rpc_url}`` (``http://127.0.0.1:<port>/a2a/``) in pipeline order."""
        return {stage: server.rpc_url for stage, server in self.servers.items()}

    @property
    def card_urls(self) -> dict[str, str]:
        return {stage: server.card_url for stage, server in self.servers.items()}

    @property
    def running(self) -> bool:
        """Whether every agent's server thread is alive."""
        return all(server.running for server in self.servers.values())

    def set_behaviour(self, behaviour: AgentBehaviour) -> None:
        """Give every agent a new default behaviour (e.g. another ``tokens_per_second``)."""
        for server in self.servers.values():
            server.set_behaviour(behaviour)

    def start(self) -> ResearchAgents:
        """Start every agent not yet started; on a failure, stop those started and re-raise."""
        try:
            for server in self.servers.values():
                if server.port is None:
                    server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every agent, all at once (each bounded by its shutdown timeout); safe to call twice."""
        errors: list[BaseException] = []

        def stop_one(server: ReferenceAgentServer) -> None:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others, then report
                errors.append(exc)

        threads = [
            threading.Thread(target=stop_one, args=(server,), name=f"stop-{stage}", daemon=True)
            for stage, server in self.servers.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def __enter__(self) -> ResearchAgents:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ResearchAgents {self.urls if self.running else 'stopped'}>"


def research_agents(
    base_port: int = 0,
    tokens_per_second: float | None = None,
    *,
    host: str = "127.0.0.1",
    work_seconds: float = DEFAULT_WORK_SECONDS,
    behaviour: AgentBehaviour | None = None,
    corpus: Corpus | None = None,
    log_level: str = "warning",
    ask: bool | None = None,
) -> ResearchAgents:
    """The seven agents, not started. ``base_port`` 0 picks free ports, else ports base..base+6.

    ``ask=False`` stops the topic stage from asking which reading of an ambiguous topic is meant
    (default: ``$AGENTVAULT_RESEARCH_QUESTIONS``, on unless ``off``).
    """
    if base_port and not 0 < base_port <= 65535 - len(STAGE_NAMES):
        raise ValueError(f"base_port {base_port} leaves no room for {len(STAGE_NAMES)} consecutive ports")
    if behaviour is None:
        behaviour = AgentBehaviour(work_seconds=work_seconds, tokens_per_second=tokens_per_second)
    elif tokens_per_second is not None:
        behaviour = behaviour.model_copy(update={"tokens_per_second": tokens_per_second})
    servers = {
        stage: ReferenceAgentServer(
            behaviour,
            host=host,
            port=base_port + index if base_port else 0,
            name=agent_name(stage),
            agent_id=agent_id(stage),
            log_level=log_level,
            skill=research_skill(stage, corpus, ask=ask),
        )
        for index, stage in enumerate(STAGE_NAMES)
    }
    return ResearchAgents(servers)


def start_research_agents(
    base_port: int = 0,
    tokens_per_second: float | None = None,
    **kwargs: object,
) -> ResearchAgents:
    """Start the seven research agents and return them (also a context manager that stops them).

    ``kwargs``: ``host``, ``work_seconds``, ``behaviour``, ``corpus``, ``log_level``, ``ask`` (see
    :func:`research_agents`).
    """
    agents = research_agents(base_port, tokens_per_second, **kwargs)  # type: ignore[arg-type]
    if kwargs.get("corpus") is None:
        Corpus.load()  # fail now, not in every task, if the corpus is missing or malformed
    return agents.start()
