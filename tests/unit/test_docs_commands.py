"""The commands the docs show exist as written: every script they run is in the tree, every ``python -m``
module can be found, and every ``--flag`` they pass is one its argparse parser defines.

Read from README.md and docs/*.md: the shell blocks (```bash, ```sh, ```console or unlabelled) and the
inline code spans that start like a command. A command counts when it runs ``bash scripts/X.sh``, a
Python file (``python benchmarks/X.py``) or a module (``python -m X``). A Python program's parser is
captured where it is built, in one child process (bounded), by stopping ``parse_known_args`` before
it parses anything; a module from outside this repository (pytest) answers ``--help`` instead. A shell
script's flag is one its text names, or one of the module it hands ``"$@"`` to (``demo.sh``).

In docs/benchmarks.md every table (a Markdown table or a block of printed output) also has its own
command block since the previous table or heading.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
PROBE_TIMEOUT = 240.0

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_OPERATORS = {";", "&", "&&", "|", "||", "(", ")"}


@dataclass(frozen=True)
class Command:
    """One simple command of a doc: what it runs (``kind`` script/module/shell, ``target``) and its flags."""

    where: str
    text: str
    kind: str
    target: str
    flags: tuple[str, ...] = field(default=())


def _words(line: str) -> list[list[str]]:
    """The simple commands of one shell line (comments dropped, split at ``;``, ``&&``, ``|``, ``&``)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in _OPERATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


def _complete(line: str) -> bool:
    """Whether ``line`` closes every quote it opens."""
    try:
        _words(line)
    except ValueError:
        return False
    return True


def _command(where: str, text: str, words: list[str]) -> Command | None:
    """What ``words`` runs, if it is a script, a Python file or a module of ours to check."""
    while words and (_ASSIGNMENT.match(words[0]) or words[0] in {"exec", "time"}):
        words = words[1:]
    if not words:
        return None
    program, rest = Path(words[0]).name, words[1:]
    if program in {"bash", "sh"} and rest and rest[0].endswith(".sh"):
        kind, target, args = "shell", rest[0], rest[1:]
    elif words[0].endswith(".sh") and "/" in words[0]:
        kind, target, args = "shell", words[0], rest
    elif _PYTHON.match(program) and rest[:1] == ["-m"] and len(rest) > 1:
        kind, target, args = "module", rest[1], rest[2:]
    elif _PYTHON.match(program) and rest and rest[0].endswith(".py"):
        kind, target, args = "script", rest[0], rest[1:]
    else:
        return None
    if kind != "module":
        target = target.removeprefix("./")
    flags = tuple(dict.fromkeys(arg.split("=", 1)[0] for arg in args if arg.startswith("--") and arg != "--"))
    return Command(where, text, kind, target, flags)


def commands_in(text: str, source: str) -> list[Command]:
    """Every command ``text`` (a Markdown page) shows in a shell block or an inline code span."""
    found: list[Command] = []
    lines: list[tuple[int, str, bool]] = []  # (line number, shell line, must parse)
    for fence in _FENCE.finditer(text):
        language = fence.group(1).strip()
        if language not in SHELL_FENCES:
            continue
        first_line = text.count("\n", 0, fence.start(2)) + 1
        pending: tuple[int, str] | None = None  # a line continued (backslash, open quote), where it began
        for offset, line in enumerate(fence.group(2).split("\n")):
            start, joined = pending if pending is not None else (first_line + offset, "")
            joined += line
            if joined.endswith("\\"):
                pending = (start, joined[:-1] + " ")
            elif language and not _complete(joined):  # a quoted string goes on on the next line
                pending = (start, joined + "\n")
            else:
                pending = None
                lines.append((start, joined, bool(language)))
        if pending is not None:
            lines.append((*pending, bool(language)))
    outside = _FENCE.sub(lambda fence: "\n" * fence.group(0).count("\n"), text)
    for number, line in enumerate(outside.split("\n"), start=1):
        lines.extend((number, span, False) for span in _INLINE.findall(line))
    for number, line, must_parse in lines:
        if not must_parse and not _complete(line):
            continue  # printed output or prose in a code span, not a command
        for words in _words(line):
            command = _command(f"{source}:{number}", " ".join(line.split()), words)
            if command is not None:
                found.append(command)
    return found


def doc_commands() -> list[Command]:
    return [command for doc in DOCS for command in commands_in(doc.read_text(encoding="utf-8"), doc.name)]


# -- a program's flags ---------------------------------------------------------------------------------------

#: Run in a child process: for each target, run it as ``__main__`` until it asks argparse to parse, and
#: print the option strings of the parser (and its subparsers) it built, or why there are none.
_PROBE = r'''
import argparse, json, runpy, sys

class Captured(BaseException):
    def __init__(self, parser):
        self.parser = parser

def capture(self, *args, **kwargs):
    raise Captured(self)

def options(parser):
    found = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= options(sub)
    return found

argparse.ArgumentParser.parse_known_args = capture
answers = {}
for kind, target in json.loads(sys.argv[1]):
    saved_path, saved_argv = list(sys.path), list(sys.argv)
    sys.argv = [target]
    try:
        if kind == "script":
            sys.path.insert(0, str(__import__("pathlib").Path(target).resolve().parent))
            runpy.run_path(target, run_name="__main__")
        else:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        answers[target] = {"error": "ran to its end without building an argparse parser"}
    except Captured as captured:
        answers[target] = {"options": sorted(options(captured.parser))}
    except BaseException as exc:
        answers[target] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        sys.path[:], sys.argv = saved_path, saved_argv
print("PROBE " + json.dumps(answers))
'''


def _source_of(kind: str, target: str) -> Path | None:
    """The file whose code runs: the script, or the module (a package's ``__main__``)."""
    if kind != "module":
        return REPO / target
    spec = importlib.util.find_spec(target)
    if spec is not None and spec.submodule_search_locations is not None:
        spec = importlib.util.find_spec(f"{target}.__main__")
    return Path(spec.origin) if spec is not None and spec.origin else None


def _ours(path: Path) -> bool:
    """Whether ``path`` is this repository's code (not a package installed into one of its venvs)."""
    resolved = path.resolve()
    return resolved.is_relative_to(REPO) and not any(
        part.startswith(".venv") for part in resolved.relative_to(REPO).parts)


@cache
def _probe(targets: tuple[tuple[str, str], ...]) -> dict[str, dict]:
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(targets)], cwd=REPO, capture_output=True,
                          text=True, timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, f"the parser probe printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(lines[-1].removeprefix("PROBE "))


@cache
def _help_text(module: str) -> str:
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    return done.stdout


def _forwarded_module(script: Path) -> str | None:
    """The module a shell script hands its own arguments to (``python -m X ... "$@"``), if any."""
    text = script.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        if '"$@"' not in line:
            continue
        for words in _words(line):
            command = _command(str(script), line, words)
            if command is not None and command.kind == "module":
                return command.target
    return None


def flag_problems(commands: list[Command]) -> list[str]:
    """What is wrong with ``commands``: a missing script or module, a flag its program does not define."""
    problems: list[str] = []
    # (command, kind and target the flags go to, the flags) for every command passing flags to Python code
    python_flags: list[tuple[Command, str, str, tuple[str, ...]]] = []
    for command in commands:
        where = f"{command.where}: `{command.text}`"
        if command.kind == "module":
            if importlib.util.find_spec(command.target) is None:
                problems.append(f"{where}: no module {command.target}")
            elif command.flags:
                python_flags.append((command, "module", command.target, command.flags))
            continue
        path = REPO / command.target
        if not path.is_file():
            problems.append(f"{where}: no file {command.target}")
            continue
        if command.kind == "script":
            if command.flags:
                python_flags.append((command, "script", command.target, command.flags))
            continue
        text = path.read_text(encoding="utf-8")
        unnamed = tuple(flag for flag in command.flags if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text))
        if unnamed:
            module = _forwarded_module(path)
            if module is None:
                problems.append(f"{where}: {command.target} does not take {', '.join(unnamed)}")
            elif importlib.util.find_spec(module) is None:
                problems.append(f"{where}: {command.target} runs {module}, which is not found")
            else:
                python_flags.append((command, "module", module, unnamed))
    ours: list[tuple[str, str]] = []
    for _, kind, target, _ in python_flags:
        source = _source_of(kind, target)
        if source is not None and _ours(source) and (kind, target) not in ours:
            if "ArgumentParser" not in source.read_text(encoding="utf-8"):
                problems.append(f"{target} is given flags but builds no argparse parser")
                continue
            ours.append((kind, target))
    answers = _probe(tuple(ours)) if ours else {}
    for command, kind, target, flags in python_flags:
        where = f"{command.where}: `{command.text}`"
        source = _source_of(kind, target)
        if source is not None and _ours(source):
            if (kind, target) not in ours:
                continue  # reported above: it builds no parser
            answer = answers[target]
            if "error" in answer:
                problems.append(f"{where}: could not read the parser of {target}: {answer['error']}")
                continue
            missing = [flag for flag in flags if flag not in answer["options"]]
        else:
            help_text = _help_text(target)
            missing = [flag for flag in flags if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text)]
        if missing:
            problems.append(f"{where}: {target} has no {', '.join(missing)}")
    return problems


# -- the tests ---------------------------------------------------------------------------------------------


def test_the_docs_show_commands_to_check() -> None:
    commands = doc_commands()
    runs = {command.target for command in commands}
    assert {"benchmarks/completion_overhead.py", "scripts/test-airflow.sh"} <= runs, sorted(runs)
    assert any(command.kind == "module" for command in commands)


def test_every_command_in_the_docs_runs_something_that_takes_its_flags() -> None:
    problems = flag_problems(doc_commands())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("doc", "problem"), [
    pytest.param("```bash\n.venv/bin/python benchmarks/completion_overhead.py --repeats 3\n```\n",
                 "has no --repeats", id="renamed-benchmark-flag"),
    pytest.param("```bash\n.venv/bin/python benchmarks/no_such_benchmark.py --repeat 3\n```\n",
                 "no file benchmarks/no_such_benchmark.py", id="missing-script"),
    pytest.param("Start it with `.venv/bin/python -m airflow_agentvault.no_such_module --port 0`.\n",
                 "no module airflow_agentvault.no_such_module", id="missing-module"),
    pytest.param("```bash\nbash scripts/demo.sh \"a topic\" --no-such-switch\n```\n",
                 "has no --no-such-switch", id="flag-the-shell-script-forwards"),
    pytest.param("```bash\nbash scripts/setup.sh --browsers\n```\n",
                 "does not take --browsers", id="flag-of-a-shell-script"),
])
def test_a_wrong_command_is_reported(doc: str, problem: str) -> None:
    commands = commands_in(doc, "example.md")
    assert len(commands) == 1, commands
    problems = flag_problems(commands)
    assert len(problems) == 1 and problem in problems[0], problems


def test_commands_are_read_as_a_shell_reads_them() -> None:
    doc = (
        "```bash\n"
        "PYTHONPATH=. .venv/bin/python benchmarks/deferred_streams.py --streams 10 \\\n"
        "    --modes deferred sync   # a comment --not-a-flag\n"
        "python -m airflow_agentvault.agent --port 0 & bash scripts/test-airflow.sh 3.2\n"
        "```\n"
        "```python\nprint('python -m not_a_command --x')\n```\n"
        "```\n100 topics x 7 stages --not-a-command\n```\n"
    )
    commands = commands_in(doc, "example.md")
    assert [(c.kind, c.target, c.flags) for c in commands] == [
        ("script", "benchmarks/deferred_streams.py", ("--streams", "--modes")),
        ("module", "airflow_agentvault.agent", ("--port",)),
        ("shell", "scripts/test-airflow.sh", ()),
    ]
    assert commands[0].where == "example.md:2" and commands[1].where == "example.md:4"


# -- docs/benchmarks.md: a command for every table ----------------------------------------------------------


def tables_without_command(text: str) -> list[int]:
    """Line numbers of the tables in ``text`` with no benchmark command block since the previous table or
    heading (a table: a Markdown table, or a fenced block with no language, which holds printed output)."""
    lonely: list[int] = []
    has_command = False
    in_fence: str | None = None
    fence_lines: list[str] = []
    in_table = False
    for number, line in enumerate(text.split("\n"), start=1):
        if in_fence is not None:
            if line.startswith("```"):
                if in_fence in SHELL_FENCES - {""}:
                    has_command = has_command or any("benchmarks/" in code for code in fence_lines)
                in_fence = None
            else:
                fence_lines.append(line)
            continue
        if line.startswith("```"):
            in_fence, fence_lines = line[3:].strip(), []
            if in_fence == "":  # printed output: a table
                if not has_command:
                    lonely.append(number)
                has_command = False
            in_table = False
            continue
        if line.startswith("#"):
            has_command, in_table = False, False
        elif line.startswith("|"):
            if not in_table:
                if not has_command:
                    lonely.append(number)
                has_command = False
            in_table = True
        else:
            in_table = False
    return lonely


def test_every_benchmark_table_has_its_command() -> None:
    lonely = tables_without_command((REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    assert not lonely, f"docs/benchmarks.md: tables with no command block above them at lines {lonely}"


def test_a_table_without_its_command_is_reported() -> None:
    doc = (
        "# B\n\n## One\n\n```bash\n.venv/bin/python benchmarks/x.py --a\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "Then with another flag:\n\n| a | b |\n|---|---|\n| 3 | 4 |\n\n"
        "## Two\n\n```\nprinted output\n```\n"
    )
    assert tables_without_command(doc) == [15, 21]
