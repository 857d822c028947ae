"""
One round of a person answering an agent's question, between a stage's follow step and its result.

The step before (the stream step or the compact stage, with ``ask_person``) returns a result whose
``question`` says the agent waits for an answer. This step shows the question under Airflow's
Required Actions (the task waits in ``awaiting_input``: no worker slot, no trigger), sends the answer
to the same remote task as a follow-up message, and follows the task on, streaming as before. When
the step before brought a final result, it passes that result on untouched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseHook, Param, ParamsDict, Variable
from airflow.sdk.log import mask_secret

from airflow_agentvault.compat import wait_for_person
from airflow_agentvault.operators.agentvault import FollowingOperator
from airflow_agentvault.operators.common import cancel_remote
from airflow_agentvault.operators.stage_timing import parse_timing
from airflow_agentvault.protocol import errors, tracing
from airflow_agentvault.protocol.models import Task
from airflow_agentvault.protocol.questions import AUTH, Question, answer_message, credential_message, question_of
from airflow_agentvault.required_action import required_action_body, required_action_subject
from airflow_agentvault.stage_tracing import traced

#: The option that refuses to answer: the remote task is canceled and the stage fails.
REJECT = "Reject and cancel the task"
#: The option that sends the free-text answer typed into the form.
SEND = "Send answer"
#: The option that sends the credential named in the form.
SEND_CREDENTIAL = "Send credential"
#: XCom key of the round this step answered (question and answer, never a secret).
ROUND_KEY = "question_round"
VARIABLE_PREFIX = "variable:"


class AgentVaultAskPersonOperator(FollowingOperator):
    """
    Ask a person the question the agent waits on, send the answer to the same task, follow it on.

    :param previous: the result of the step before (the stream step's or the compact stage's output, or
        an earlier round's); a result without a ``question`` is passed on unchanged (templated).
    :param round_number: which round of questions this step answers (1 for the first).
    :param max_rounds: the stage's bound: after the last round, another question cancels the remote task
        and fails the stage with :class:`TooManyQuestionsError`.
    :param response_timeout: how long a person may take (Airflow's HITL ``response_timeout``); unanswered,
        the remote task is canceled and the stage fails with :class:`QuestionUnansweredError`.
    :param assigned_users: who may answer (Airflow's HITL ``assigned_users``).

    Other arguments: see :class:`FollowingOperator`.
    """

    template_fields: Sequence[str] = ("previous", "timing")
    ui_color = "#fdf1d8"

    def __init__(self, *, previous: Any, round_number: int = 1, max_rounds: int = 1,
                 response_timeout: timedelta | None = None, assigned_users: Any = None, **kwargs: Any) -> None:
        super().__init__(**{"ask_person": True, **kwargs})
        if not 1 <= round_number <= max_rounds:
            raise ValueError(f"round_number must be between 1 and max_rounds ({max_rounds}), got {round_number}")
        self.previous = previous
        self.round_number = round_number
        self.max_rounds = max_rounds
        self.response_timeout = response_timeout
        self.assigned_users = assigned_users

    @traced("ask_person")
    def execute(self, context: Any) -> Any:
        if not isinstance(self.previous, dict) or "question" not in self.previous:
            self.log.info("The agent asked nothing: passing its result on")
            return self.previous
        agent_task_id = str(self.previous["task_id"])
        self._following = agent_task_id
        task = self.hook.client.get(agent_task_id)  # tasks/get is the truth: an earlier try may have answered
        question = question_of(task)
        if question is None:
            self.log.info("Task %s no longer waits for an answer (state %s): following it on", agent_task_id,
                          task.state.value)
            return self.follow_here_or_defer(agent_task_id, parse_timing(self.timing), context)
        self.ask(context, task, question)
        return None  # not reached: ask() pauses the task

    def ask(self, context: Any, task: Task, question: Question) -> None:
        options, params = form_of(question)
        self.log.info("The agent asks (round %d of %d): %s%s", self.round_number, self.max_rounds, question.text,
                      f" [options: {', '.join(question.options)}]" if question.options else "")
        self.log.info("Waiting for a person to answer under Required Actions")
        tracing.event(tracing.PERSON_ASKED, **{"agentvault.round": self.round_number, "agentvault.question.kind":
                                               question.kind, "agentvault.question.options": len(question.options)})
        wait_for_person(
            self, context,
            subject=required_action_subject(question, self.agentvault_conn_id),
            body=required_action_body(question, task, round_number=self.round_number, max_rounds=self.max_rounds),
            options=options, params=params, timeout=self.response_timeout, method_name="answer_received",
            kwargs={"agent_task_id": task.id, "context_id": task.context_id, "question": question.to_dict(),
                    "asked_at": time.time()},
        )

    @traced("ask_person.answer")
    def answer_received(self, context: Any, event: dict[str, Any], agent_task_id: str, context_id: str | None,
                        question: dict[str, Any], asked_at: float | None = None) -> Any:
        """A person answered (or the time ran out): send the answer on and follow the task."""
        asked = Question.from_dict(question)
        self._following = agent_task_id
        chosen = list(event.get("chosen_options") or [])
        tracing.event(tracing.PERSON_ANSWERED, **{
            "agentvault.round": self.round_number, "agentvault.person.answered": "error" not in event,
            "agentvault.person.rejected": REJECT in chosen, "agentvault.question.kind": asked.kind,
            "agentvault.person.wait_seconds": round(time.time() - asked_at, 3) if asked_at else None})
        if "error" in event or REJECT in chosen:
            why = "nobody answered it in time" if "error" in event else "a person rejected it"
            self.cancel_asking_task(agent_task_id, why)
            raise errors.QuestionUnansweredError(
                f"the agent's question went unanswered ({why}): {asked.text}", agent_message=asked.text,
                agent_url=self.hook.agent_url, task_id=agent_task_id)
        user = event.get("responded_by_user")
        by = user.get("name") if isinstance(user, dict) else None
        answer, message = self.answer_of(asked, chosen, event.get("params_input") or {})
        self.hook.client.send(message, task_id=agent_task_id, context_id=context_id)
        self.log.info("%s answered: %s; sent to task %s", by or "A person", answer, agent_task_id)
        context["ti"].xcom_push(key=ROUND_KEY, value={"round": self.round_number, "question": asked.text,
                                                       "answer": answer, "answered_by": by})
        return self.follow_here_or_defer(agent_task_id, parse_timing(self.timing), context)

    def answer_of(self, question: Question, chosen: list[str], params_input: dict[str, Any]) -> tuple[str, Any]:
        """(what the log and result may show, the follow-up message)."""
        if question.kind == AUTH:
            source = str(params_input.get("credential_source") or "").strip()
            return f"credential from {source}", credential_message(read_credential(source))
        if question.options:
            return chosen[0], answer_message(chosen[0])
        answer = str(params_input.get("answer") or "").strip()
        if not answer:
            raise errors.QuestionUnansweredError(f"the answer to the agent's question was empty: {question.text}",
                                                 agent_message=question.text, agent_url=self.hook.agent_url)
        return answer, answer_message(answer)

    def _deliver(self, task: Task, metadata: dict[str, Any], status_message: str | None, context: Any
                 ) -> dict[str, Any]:
        rounds = [*previous_rounds(self.previous), context["ti"].xcom_pull(task_ids=self.task_id, key=ROUND_KEY)]
        metadata = {**metadata, "questions": [r for r in rounds if r]}
        asked_again = question_of(task)
        if asked_again is not None and self.round_number >= self.max_rounds:
            self.cancel_asking_task(task.id, "the stage allows no more rounds")
            raise errors.TooManyQuestionsError(
                f"the agent asked again after {self.max_rounds} round(s) of questions (the stage's max_rounds); "
                f"it asks: {asked_again.text}", agent_url=self.hook.agent_url, task_id=task.id)
        return super()._deliver(task, metadata, status_message, context)

    def cancel_asking_task(self, agent_task_id: str, why: str) -> None:
        if self.cancel_on_kill:
            self.log.warning("Canceling task %s on the agent: %s", agent_task_id, why)
            cancel_remote(self.hook.client, agent_task_id, self.log)


def form_of(question: Question) -> tuple[list[str], ParamsDict | None]:
    """The Required Action's options and form fields for a question."""
    if question.kind == AUTH:
        return [SEND_CREDENTIAL, REJECT], ParamsDict({"credential_source": Param(
            "", type="string", title="Credential source",
            description="The name of an Airflow connection (its password is sent) or variable:NAME "
                        "(an Airflow variable). Never the secret itself.")})
    if question.options:
        return [*question.options, REJECT], None
    return [SEND, REJECT], ParamsDict({"answer": Param("", type="string", title="Your answer",
                                                       description=question.text)})


def read_credential(source: str) -> str:
    """The secret a person named: a connection's password or a variable; masked before anything logs it."""
    if not source:
        raise errors.QuestionUnansweredError("the answer named no connection or variable to take the credential from")
    if source.startswith(VARIABLE_PREFIX):
        secret = Variable.get(source.removeprefix(VARIABLE_PREFIX))
    else:
        secret = BaseHook.get_connection(source).password
    if not secret:
        raise errors.QuestionUnansweredError(f"{source} holds no credential (empty password or value)")
    mask_secret(secret)
    return str(secret)


def previous_rounds(previous: Any) -> list[dict[str, Any]]:
    metadata = previous.get("metadata") if isinstance(previous, dict) else None
    rounds = metadata.get("questions") if isinstance(metadata, dict) else None
    return list(rounds) if isinstance(rounds, list) else []
