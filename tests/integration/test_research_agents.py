"""The seven research agents, driven over plain JSON-RPC as the research pipeline drives them.

Uses ``requests`` only (not the provider's client), so these tests check the agents. Every wait is
bounded: HTTP timeouts, polling deadlines, and the subprocess's READY line and exit.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from agentvault_stack.agent import AgentBehaviour, ReferenceAgentServer
from agentvault_stack.agent.contract import FunctionSkill, SkillInputError
from agentvault_stack.agent.research import STAGE_NAMES, ResearchAgents, start_research_agents

pytestmark = pytest.mark.integration

TIMEOUT = (2.0, 10.0)
TOPIC = "solar power adoption"
STAGE_TEXT = {
    "topic_research": f"Break the topic into research questions: {TOPIC}",
    "crawl": f"Find the documents that answer these questions about {TOPIC}",
    "extract": "Extract the claims, with their sources, from these documents",
    "verify": "Check each claim against the other sources",
    "synthesize": f"Write a report on {TOPIC} from the verified claims, with citations",
    "edit": "Edit the report for clarity and consistency",
    "visualize": "Chart the findings of the verification",
}


# -- helpers --------------------------------------------------------------------------------


def rpc(url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "method": method, "params": params, "id": f"req-{method}"}
    response = requests.post(url, json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert "error" not in reply, reply
    return reply["result"]


def send(url: str, text: str, data: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
    parts = [{"type": "text", "content": text}, {"type": "data", "content": data}]
    message: dict[str, Any] = {"role": "user", "parts": parts}
    if overrides:
        message["metadata"] = {"reference_agent": overrides}
    return rpc(url, "tasks/send", {"message": message})["id"]


def wait_done(url: str, task_id: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = rpc(url, "tasks/get", {"id": task_id})
        if task["state"] in ("COMPLETED", "FAILED", "CANCELED"):
            return task
        if time.monotonic() > deadline:
            pytest.fail(f"task {task_id} at {url} still {task['state']} after {timeout}s")
        time.sleep(0.02)


def result_of(task: dict[str, Any]) -> dict[str, Any]:
    """The result dict the provider hands to the next stage (state, text, messages, artifacts)."""
    agent_texts = [
        part["content"]
        for message in task["messages"]
        if message["role"] != "user"
        for part in message["parts"]
        if part["type"] == "text"
    ]
    return {
        "task_id": task["id"],
        "state": task["state"],
        "text": agent_texts[-1] if agent_texts else "",
        "messages": task["messages"],
        "artifacts": task["artifacts"],
    }


def run_pipeline(urls: dict[str, str], topic: str = TOPIC, overrides: dict[str, Any] | None = None) -> dict[str, dict]:
    results: dict[str, dict] = {}
    previous = None
    for stage in STAGE_NAMES:
        data: dict[str, Any] = {"topic": topic}
        if previous is not None:
            data["previous"] = previous
        task = wait_done(urls[stage], send(urls[stage], STAGE_TEXT[stage], data, overrides))
        assert task["state"] == "COMPLETED", (stage, task["messages"][-1], task["metadata"])
        previous = results[stage] = result_of(task)
    return results


def by_type(result: dict[str, Any], artifact_type: str) -> dict[str, Any]:
    found = [a for a in result["artifacts"] if a["type"] == artifact_type]
    assert found, (artifact_type, [a["type"] for a in result["artifacts"]])
    return found[-1]


@pytest.fixture(scope="module")
def agents() -> Iterator[ResearchAgents]:
    with start_research_agents(base_port=0, work_seconds=0.04) as running:
        yield running


# -- the agents -----------------------------------------------------------------------------


def test_each_stage_has_its_own_agent_and_card(agents: ResearchAgents) -> None:
    assert list(agents.urls) == list(STAGE_NAMES)
    assert len({url for url in agents.urls.values()}) == 7
    for stage, url in agents.urls.items():
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/a2a/", url)
        card = requests.get(agents.card_urls[stage], timeout=TIMEOUT).json()
        assert card["humanReadableId"] == f"research/{stage}"
        assert card["url"] == url
        assert card["skills"][0]["id"] == f"research-{stage.replace('_', '-')}"


def test_seven_stage_chain_over_json_rpc(agents: ResearchAgents) -> None:
    results = run_pipeline(agents.urls)
    plan = by_type(results["topic_research"], "research_plan")
    assert plan["id"] == f"{results['topic_research']['task_id']}-plan"  # ids prefixed with the task id
    assert 4 <= len(plan["content"]["questions"]) <= 6
    assert len(by_type(results["crawl"], "documents")["content"]["documents"]) == 4
    assert by_type(results["verify"], "verification")["content"]["summary"]["total"] == 13

    report = by_type(results["edit"], "report")
    assert report["mediaType"] == "text/markdown"
    markdown = report["content"]
    assert markdown.startswith("# Research Report: Solar Power Adoption\n\n**Summary.**")
    body, _, refs = markdown.partition("## References")
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    listed = [int(n) for n in re.findall(r"^(\d+)\. ", refs, re.MULTILINE)]
    assert listed == [1, 2, 3, 4] and cited == set(listed)
    assert results["edit"]["text"] == markdown  # one message: the edited report

    chart = by_type(results["visualize"], "chart")
    assert chart["mediaType"] == "image/svg+xml"
    root = ET.fromstring(chart["content"])
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert results["visualize"]["text"].startswith("Chart of 13 findings on solar power adoption across 4 sources")

    # Deterministic over the wire too: a second run writes the same report and chart.
    again = run_pipeline(agents.urls)
    assert by_type(again["edit"], "report")["content"] == markdown
    assert by_type(again["visualize"], "chart")["content"] == chart["content"]


def test_slow_llm_tokens_stream_the_answer_word_by_word(agents: ResearchAgents) -> None:
    url = agents.urls["topic_research"]
    plain = wait_done(url, send(url, "plan", {"topic": TOPIC}))
    streamed = wait_done(url, send(url, "plan", {"topic": TOPIC}, {"tokens_per_second": 400}))
    answer = result_of(plain)["text"]
    words = [m["parts"][0]["content"] for m in streamed["messages"] if m["role"] == "assistant"]
    assert len(words) == len(answer.split()) > 20
    assert "".join(words) == answer
    assert streamed["artifacts"][0]["content"] == plain["artifacts"][0]["content"]


def test_bad_input_fails_the_task_with_the_reason(agents: ResearchAgents) -> None:
    url = agents.urls["extract"]
    task = wait_done(url, send(url, "Extract the claims", {"topic": TOPIC}))
    assert task["state"] == "FAILED"
    assert task["metadata"]["error"].startswith("skill research-extract failed: extract needs documents")
    assert task["messages"][-1]["parts"][0]["content"] == task["metadata"]["error"]


# -- everyday topics: the general-knowledge corpus (Wikipedia summaries) -----------------------


def test_an_everyday_topic_gives_a_report_from_wikipedia(agents: ResearchAgents) -> None:
    topic = "vaccine hesitancy"
    results = run_pipeline(agents.urls, topic)
    documents = by_type(results["crawl"], "documents")["content"]["documents"]
    assert documents[0]["url"] == "https://en.wikipedia.org/wiki/Vaccine_hesitancy"
    markdown = by_type(results["edit"], "report")["content"]
    body, _, refs = markdown.partition("## References")
    assert re.search(r"^[^#\n].*\[1\]", body, re.MULTILINE)  # a paragraph citing the first article
    listed = re.findall(r"^\d+\. .*$", refs, re.MULTILINE)
    assert listed and all("*Wikipedia*" in line and "https://en.wikipedia.org/wiki/" in line for line in listed)
    assert markdown.rstrip().endswith("this report may be shared under the same license.")
    assert "CC BY-SA 4.0" in markdown.rstrip().splitlines()[-1]
    assert by_type(results["visualize"], "chart")["metadata"]["totals"]["single-source"] > 0


def test_a_topic_nothing_covers_fails_the_crawl_task_with_the_reason(agents: ResearchAgents) -> None:
    topic = "qwxzv blorft"
    plan = wait_done(agents.urls["topic_research"], send(agents.urls["topic_research"], "plan", {"topic": topic}))
    url = agents.urls["crawl"]
    task = wait_done(url, send(url, STAGE_TEXT["crawl"], {"topic": topic, "previous": result_of(plan)}))
    assert task["state"] == "FAILED"
    error = task["metadata"]["error"]
    assert error.startswith(f"skill research-crawl failed: no document in the research corpus is about '{topic}'")
    assert "general-knowledge corpus" in error


# -- ambiguous topics: the topic stage asks which reading is meant ----------------------------


def wait_stopped(url: str, task_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll tasks/get until the task ends or waits for a person; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        task = rpc(url, "tasks/get", {"id": task_id})
        if task["state"] in ("COMPLETED", "FAILED", "CANCELED", "INPUT_REQUIRED"):
            return task
        if time.monotonic() > deadline:
            pytest.fail(f"task {task_id} at {url} still {task['state']} after {timeout}s")
        time.sleep(0.02)


def answer(url: str, task_id: str, text: str) -> None:
    message = {"role": "user", "parts": [{"type": "text", "content": text}, {"type": "data", "content": {"answer": text}}]}
    assert rpc(url, "tasks/send", {"id": task_id, "message": message})["id"] == task_id


def test_an_ambiguous_topic_asks_which_reading_and_the_report_says_which(agents: ResearchAgents) -> None:
    url = agents.urls["topic_research"]
    task_id = send(url, "Break the topic into research questions: jaguar", {"topic": "jaguar"})
    asked = wait_stopped(url, task_id)
    assert asked["state"] == "INPUT_REQUIRED", asked["messages"][-1]
    assert asked["messages"][-1]["role"] == "assistant"
    assert asked["messages"][-1]["parts"] == [
        {"type": "text", "content": "Which jaguar do you mean?"},
        {"type": "data", "content": {"options": ["the animal", "the car maker"]}, "mediaType": "application/json"},
    ]
    assert asked["artifacts"] == []

    answer(url, task_id, "the car maker")
    planned = wait_done(url, task_id)
    assert planned["state"] == "COMPLETED", planned["metadata"]
    assert result_of(planned)["text"].startswith("Reading chosen: the car maker. Research plan for jaguar:")
    assert by_type(result_of(planned), "research_plan")["content"]["reading"] == "the car maker"

    results = {"topic_research": result_of(planned)}
    previous = results["topic_research"]
    for stage in STAGE_NAMES[1:]:
        data = {"topic": "jaguar", "previous": previous}
        task = wait_stopped(agents.urls[stage], send(agents.urls[stage], STAGE_TEXT[stage], data))
        assert task["state"] == "COMPLETED", (stage, task["messages"][-1])
        previous = results[stage] = result_of(task)
    documents = by_type(results["crawl"], "documents")["content"]
    assert documents["reading"] == "the car maker"
    assert {d["id"] for d in documents["documents"]} == {"jaguar-car-01", "jaguar-car-02"}
    for stage, kind in (("extract", "claims"), ("verify", "verification"), ("edit", "verification")):
        assert by_type(results[stage], kind)["content"]["reading"] == "the car maker", stage
    report = by_type(results["edit"], "report")["content"]
    assert "\nReading chosen: the car maker.\n" in report
    assert "Edsel Motor Trade Journal" in report and "Wildlife Trust" not in report


def test_another_answer_picks_another_reading(agents: ResearchAgents) -> None:
    url = agents.urls["topic_research"]
    task_id = send(url, "plan", {"topic": "mercury"})
    asked = wait_stopped(url, task_id)
    assert asked["messages"][-1]["parts"][1]["content"] == {"options": ["the chemical element", "the planet"]}
    answer(url, task_id, "planet")  # a free-text answer naming one reading
    plan = by_type(result_of(wait_done(url, task_id)), "research_plan")["content"]
    assert plan["reading"] == "the planet" and plan["corpus_topic"] == "mercury (the planet)"


def test_an_answer_naming_no_reading_fails_with_the_choices(agents: ResearchAgents) -> None:
    url = agents.urls["topic_research"]
    task_id = send(url, "plan", {"topic": "mercury"})
    assert wait_stopped(url, task_id)["state"] == "INPUT_REQUIRED"
    answer(url, task_id, "the moon")
    failed = wait_done(url, task_id)
    assert failed["state"] == "FAILED"
    assert "choose one of: the chemical element, the planet" in failed["metadata"]["error"]


def test_a_reading_named_up_front_or_a_clear_topic_never_asks(agents: ResearchAgents) -> None:
    url = agents.urls["topic_research"]
    named = wait_stopped(url, send(url, "plan", {"topic": "mercury", "reading": "the chemical element"}))
    assert named["state"] == "COMPLETED"
    assert by_type(result_of(named), "research_plan")["content"]["reading"] == "the chemical element"
    clear = wait_stopped(url, send(url, "plan", {"topic": TOPIC}))
    assert clear["state"] == "COMPLETED"
    assert [m["role"] for m in clear["messages"]] == ["user", "assistant"]
    assert "reading" not in by_type(result_of(clear), "research_plan")["content"]


def test_asking_turned_off_by_the_environment_takes_the_first_reading(
    agents: ResearchAgents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTVAULT_RESEARCH_QUESTIONS", "off")
    url = agents.urls["topic_research"]
    task = wait_stopped(url, send(url, "plan", {"topic": "mercury"}))
    assert task["state"] == "COMPLETED"
    assert result_of(task)["text"].startswith(
        "Reading chosen: the chemical element (asking is off: the first reading). Research plan for mercury:"
    )


def test_a_custom_skill_on_the_reference_agent() -> None:
    def shout(request: Any) -> Any:
        if not request.texts:
            raise SkillInputError("nothing to shout")
        from agentvault_stack.agent.contract import SkillResult, make_artifact

        return SkillResult(request.text.upper(), [make_artifact("loud", "shout", {"n": len(request.text)})])

    skill = FunctionSkill(shout, skill_id="shout", name="Shout", description="Upper-cases the text.")
    with ReferenceAgentServer(AgentBehaviour(work_seconds=0.02), skill=skill) as server:
        card = requests.get(server.card_url, timeout=TIMEOUT).json()
        assert card["skills"] == [{"id": "shout", "name": "Shout", "description": "Upper-cases the text."}]
        task = wait_done(server.rpc_url, send(server.rpc_url, "hello there", {}))
        assert task["messages"][-1]["parts"][0]["content"] == "HELLO THERE"
        assert task["artifacts"][0]["id"] == f"{task['id']}-loud"
        assert task["artifacts"][0]["content"] == {"n": 11}


def _free_consecutive_ports(count: int) -> int:
    """A base port whose next ``count`` ports are free right now (best effort)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
        probe.close()
        if base + count > 65535:
            continue
        held = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
                held.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    pytest.skip("no 7 consecutive free ports found")


def test_fixed_base_port_gives_consecutive_ports() -> None:
    base = _free_consecutive_ports(len(STAGE_NAMES))
    with start_research_agents(base_port=base, work_seconds=0.02) as agents:
        assert [int(url.split(":")[2].split("/")[0]) for url in agents.urls.values()] == list(range(base, base + 7))


# -- the command line -----------------------------------------------------------------------


def _read_lines_until(process: subprocess.Popen, marker: str, timeout: float) -> list[str]:
    """stdout lines up to and including ``marker`` (raw reads: a buffered readline could block)."""
    fd = process.stdout.fileno()
    buffer = b""
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(deadline - time.monotonic(), 0.01)):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
            lines = buffer.decode().splitlines()
            if marker in lines:
                return lines[: lines.index(marker) + 1]
    finally:
        selector.close()
    stderr = process.stderr.read().decode() if process.poll() is not None else ""
    pytest.fail(f"no {marker!r} within {timeout}s; got {buffer.decode()!r}; stderr: {stderr}")


def test_command_line_prints_ready_and_exits_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "agentvault_stack.agent.research", "--base-port", "0", "--tokens-per-second", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = _read_lines_until(process, "READY", timeout=30.0)
        agents = [line.split(" ") for line in lines[:-1]]
        assert [a[0] for a in agents] == ["AGENT"] * 7
        assert [a[1] for a in agents] == list(STAGE_NAMES)
        urls = {stage: url for _, stage, url in agents}
        task = wait_done(urls["verify"], send(urls["verify"], "check", {"claims": [
            {"claim": "Wind supplied 30% of power in 2022.", "source": "A"},
            {"claim": "Wind supplied 30 percent of power in 2022.", "source": "B"},
        ]}))
        assert task["state"] == "COMPLETED"
        assert task["artifacts"][0]["content"]["summary"]["corroborated"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        process.stdout.close()
        process.stderr.close()


def test_command_line_no_questions_takes_the_first_reading() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "agentvault_stack.agent.research", "--base-port", "0", "--no-questions"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "AGENTVAULT_RESEARCH_QUESTIONS"},
    )
    try:
        lines = _read_lines_until(process, "READY", timeout=30.0)
        url = dict(line.split(" ")[1:] for line in lines[:-1])["topic_research"]
        task = wait_stopped(url, send(url, "plan", {"topic": "jaguar"}))
        assert task["state"] == "COMPLETED"
        assert by_type(result_of(task), "research_plan")["content"]["reading"] == "the animal"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        process.stdout.close()
        process.stderr.close()


def test_reference_agent_cli_rejects_an_unknown_skill() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentvault_stack.agent", "--skill", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "unknown skill 'nope'" in done.stderr
