"""The end check of a soak run: each stage against the agent's own task, sends counted per stage, failures
read for a typed error naming their cause. The agent's tasks are read straight from the agent (past the fault
proxy); a killed agent forgets its tasks, so :class:`Ledger` reads them before each kill.
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from airflow_agentvault.protocol import errors
from airflow_agentvault.protocol.client import AgentClient
from airflow_agentvault.protocol.dialects import codec_for
from airflow_agentvault.protocol.models import Task

if TYPE_CHECKING:
    from agentvault_stack.testing.distributed_stack import DistributedAirflowStack
    from agentvault_stack.testing.soak_parts import AgentProcess, SoakReport

KEY = re.compile(rb"soak-key=([\w.-]+)")
#: The exception a failed try ended with, as Airflow logs it (``error_detail`` of "Task failed with exception").
RAISED = re.compile(r"'exc_type': '(\w+)', 'exc_value': (['\"])(.*?)\2, ")
EXACT, LOST_WITH_AGENT, TYPED = "exact result", "completed as its agent died (not checkable)", "failed, typed error"


def typed_error_names() -> list[str]:
    """Every error the provider raises while talking to an agent (subclasses of AgentVaultError)."""
    names, todo = [], [errors.AgentVaultError]
    while todo:
        cls = todo.pop()
        names.append(cls.__name__)
        todo += cls.__subclasses__()
    return sorted(set(names), key=len, reverse=True)


class Ledger:
    """The agents' finished tasks, read from each agent directly, kept across agent restarts."""

    def __init__(self, agents: dict[str, AgentProcess]) -> None:
        self.agents = agents
        self.finals: dict[str, dict[str, Task]] = {name: {} for name in agents}

    def client(self, agent: AgentProcess) -> AgentClient:
        dialect = agent.spec.conn_extra.get("dialect")
        return AgentClient(agent.rpc_url, codec=codec_for(dialect) if dialect else None, read_timeout=10)

    def snapshot(self) -> None:
        """Read every task the agents created and that is not known finished yet."""
        for name, agent in self.agents.items():
            client = self.client(agent)
            for task_id in agent.proxy.created_task_ids:
                if task_id in self.finals[name]:
                    continue
                with contextlib.suppress(errors.AgentVaultError):
                    task = client.get(task_id)
                    if task.state.is_terminal:
                        self.finals[name][task_id] = task


def agent_of(dag_id: str, agents: dict[str, Any]) -> str:
    return next(name for name in agents if dag_id.endswith("_" + name))


def check_stages(stack: DistributedAirflowStack, agents: dict[str, AgentProcess], ledger: Ledger,
                 dag_ids: list[str], per_dag: int, report: SoakReport) -> None:
    """Fill ``report.stages`` / ``errors`` and add a line to ``report.problems`` for each broken condition."""
    created: dict[str, dict[str, list[str]]] = {}
    for name, agent in agents.items():
        by_key: dict[str, list[str]] = defaultdict(list)
        for task_id, body in agent.proxy.created_by.items():
            found = KEY.search(body)
            key = found.group(1).decode() if found else "?"
            by_key[key].append(task_id)
            report.sent[task_id] = key
        created[name] = by_key
        for key, ids in by_key.items():
            finished = [task_id for task_id in ids[:-1] if task_id in ledger.finals[name]]
            if finished:  # a task that ran to its end, and another one for the same stage
                report.problems.append(f"{name}: stage {key} started {len(ids)} remote tasks {ids}")
            elif len(ids) > 1:  # a retry after the agent lost the first (restarted without its tasks)
                report.resent_after_loss += 1
    names = set(typed_error_names())
    rows = stack.query("SELECT dag_id, run_id, task_id, state, try_number FROM task_instance "
                       "WHERE dag_id LIKE 'soak%' ORDER BY dag_id, run_id, task_id")
    for row in rows:
        where = f"{row['dag_id']}/{row['run_id']}/{row['task_id']}"
        name = agent_of(row["dag_id"], agents)
        key = f"{row['run_id']}.{row['task_id'].removeprefix('stage_')}"
        ids = created[name].get(key, [])
        if row["state"] == "success":
            report.stages[_check_result(stack, row, ids, ledger.finals[name], where, report)] += 1
        elif row["state"] == "failed":
            log = stack.task_log(row["dag_id"], row["run_id"], row["task_id"], try_number=row["try_number"])
            raised = RAISED.findall(log)
            error, _quote, cause = raised[-1] if raised else ("", "", "")
            if error in names:
                report.stages[TYPED] += 1
                report.errors[error] += 1
                report.causes.setdefault(error, cause)
            else:
                report.stages["failed, untyped"] += 1
                report.problems.append(f"{where} failed without a typed error ({error or 'no exception'}): "
                                       f"...{log[-600:]}")
        else:
            report.stages[f"left {row['state']}"] += 1
            report.problems.append(f"{where} never ended: {row['state']} (try {row['try_number']})")


def _check_result(stack: DistributedAirflowStack, row: dict[str, Any], ids: list[str], finals: dict[str, Task],
                  where: str, report: SoakReport) -> str:
    result = stack.xcom(row["dag_id"], row["run_id"], row["task_id"])
    task_id = result.get("task_id") if isinstance(result, dict) else None
    if task_id not in ids:
        report.problems.append(f"{where}: result of remote task {task_id} (sent for stage "
                               f"{report.sent.get(str(task_id), 'none seen')}), not of the one sent for it {ids}")
    final = finals.get(str(task_id))
    if final is None:
        return LOST_WITH_AGENT
    if result.get("state") != final.state.value or result.get("artifacts") != [a.to_wire() for a in final.artifacts]:
        report.problems.append(f"{where}: result differs from the agent's own task {task_id}")
        return "differs from the agent's"
    return EXACT
