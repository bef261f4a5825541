"""The pydantic-ai run of one execution: prompt, tools, validators, retries and the outcome.

The run's ``Agent`` is built from the definition, or reused from an earlier run that built the
same one (``workers.run.agent_builder``). Its validators become one pydantic-ai output validator:
*retry* raises ``ModelRetry`` with the feedback, *fail* raises ``ExecutionFailed``, which ends
the run.
Outcomes:

- all validators pass → finished, the result;
- a validator fails, or the model calls ``stop_execution`` → ``validation_failed`` (or the
  definition's own code) with the reason;
- retries exhausted → ``max_retries_exceeded`` with a short summary the model is asked for;
- anything unexpected (provider down, a bug, the time limit) → ``runtime_error`` with
  ``ExceptionType: message``; a provider's error says its HTTP status and a short reason, never
  its body (``workers.run.failures``);
- PostgreSQL failing under a tool that cannot run again, or under the definition's own reads →
  no outcome: ``DatabaseLost`` is raised, and the execution is handed back to be resumed.

Nothing here holds a database session across a model call: the transcript and the tools use a
short session each time.
"""

import asyncio
import logging
from typing import Any

from pydantic_ai import (
    Agent,
    AgentRunResult,
    ModelRequestNode,
    RunUsage,
    UnexpectedModelBehavior,
    UsageLimits,
)
from pydantic_ai.exceptions import ModelAPIError, UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, RetryFeedbackPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings as RequestSettings
from pydantic_graph import End

from app.budgets.limits import BUDGET_EXCEEDED, Budget
from app.budgets.usage import usage_dict
from app.conversations.trace import TraceEntry
from app.core.database_errors import is_database_outage
from app.definitions.base import ExecutionDefinition
from app.definitions.run import ExecutionRun
from app.definitions.validators import ExecutionFailed
from workers.run.agent_builder import AgentCache, Progress, RunHooks, build_agent, running_with
from workers.run.database import DatabaseLost
from workers.run.durability import RunJournal, journaling
from workers.run.failures import error_text, log_provider_error, public_explanation
from workers.run.outcome import Outcome
from workers.run.transcript import Transcript

logger = logging.getLogger(__name__)

# The summary asked for after the retries are exhausted is one short answer, time-boxed apart
# from the execution's own limit.
SUMMARY_TIMEOUT_SECONDS = 30.0
MAX_EXPLANATION_CHARS = 2000
# The trace's last entry of a run whose result passed its validators.
RESULT_NOTE = "The result passed validation."

SUMMARY_INSTRUCTIONS = (
    "You tried to complete a task, but each answer you gave was rejected by automatic checks, "
    "and no attempts are left. Explain to the user, in plain language and at most two "
    "sentences, why you could not satisfy the checks. Do not apologise; do not use markdown."
)


def _clipped(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_EXPLANATION_CHARS else text[: MAX_EXPLANATION_CHARS - 1] + "…"


def _retries_exhausted(exc: UnexpectedModelBehavior) -> bool:
    # pydantic-ai says so only in the message: "Exceeded maximum output retries (3)" for the
    # result, "Tool 'x' exceeded max retries count of 3" for a tool's arguments.
    message = exc.message.lower()
    return "exceeded maximum output retries" in message or "exceeded max retries" in message


def _deliberate_failure(exc: Exception) -> ExecutionFailed | None:
    # Tools called in parallel may report stop_execution inside an exception group.
    if isinstance(exc, ExceptionGroup):
        matched, _ = exc.split(ExecutionFailed)
        if matched is not None:
            first = matched.exceptions[0]
            while isinstance(first, ExceptionGroup):
                first = first.exceptions[0]
            return first if isinstance(first, ExecutionFailed) else None
    return None


def _raised_by_the_database(exc: BaseException) -> bool:
    """Whether ``exc`` came up through the database driver (asyncpg, SQLAlchemy)."""
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_globals.get("__name__", "").startswith(("asyncpg", "sqlalchemy")):
            return True
        frame = frame.tb_next
    return False


def _database_lost(exc: BaseException) -> bool:
    # A tool that could not be run again, or a read of the definition (prepare, a validator)
    # that failed with PostgreSQL; tools called in parallel report it inside a group.
    if isinstance(exc, DatabaseLost):
        return True
    if is_database_outage(exc):
        # A bare TimeoutError is the run's own time limit, or a tool's, more often than a
        # connection to PostgreSQL timing out: not taken for one. Nor is a socket error
        # raised elsewhere than in the database driver: a model provider down, say.
        if type(exc) is TimeoutError:
            return False
        return not isinstance(exc, OSError) or _raised_by_the_database(exc)
    if isinstance(exc, BaseExceptionGroup):
        return any(_database_lost(inner) for inner in exc.exceptions)
    return False


async def _drive(
    agent: Agent[Any, Any],
    prompt: str,
    *,
    deps: Any,
    transcript: Transcript,
    progress: Progress,
    usage_limits: UsageLimits,
    model_settings: RequestSettings | None,
) -> Any:
    """Run the agent node by node, writing each request before it is sent and each response
    and tool result as soon as it is there."""
    result: AgentRunResult[Any] | None
    async with agent.iter(
        prompt,
        deps=deps,
        usage=progress.usage,
        usage_limits=usage_limits,
        model_settings=model_settings,
    ) as agent_run:
        progress.messages = agent_run.all_messages
        async for node in agent_run:
            if isinstance(node, End):
                # The last tool result is written with the outcome, in one statement.
                break
            messages = agent_run.all_messages()
            if isinstance(node, ModelRequestNode):
                # A new list: all_messages() is the run's own, which pydantic-ai appends the
                # request to itself; appending here too sent it to the model twice.
                messages = [*messages, node.request]
            await transcript.sync(messages)
        result = agent_run.result
    if result is None:
        raise RuntimeError("the agent run ended without a result")
    return result.output


def _agent_for(
    definition: ExecutionDefinition, run: ExecutionRun, model: Model, agents: AgentCache | None
) -> Agent[ExecutionRun, Any]:
    parts = (definition.output_type(run), definition.system_prompt(run), definition.tools(run))
    if agents is None:
        return build_agent(definition, model, *parts)
    return agents.agent_for(definition, model, *parts)


async def run_definition(
    definition: ExecutionDefinition,
    run: ExecutionRun,
    model: Model,
    transcript: Transcript,
    *,
    timeout_seconds: float,
    model_settings: RequestSettings | None = None,
    usage: RunUsage | None = None,
    agents: AgentCache | None = None,
    budget: Budget = Budget(),
    journal: RunJournal | None = None,
) -> Outcome:
    """Run the execution to its outcome, whose ``closing`` entries are left for the caller to
    write with it. Never raises, except on cancellation and ``DatabaseLost`` (``usage``, if
    given, then tells what the run used so far, counting from what it held: earlier
    attempts'). ``agents``: where to
    find an Agent built for an earlier run. ``budget``: the usage limits the run is held to.
    ``journal``: its model responses and tool results are journaled there, and those earlier
    attempts journaled are replayed (``workers.run.durability``)."""
    progress = Progress(usage=usage if usage is not None else RunUsage())
    hooks = RunHooks(transcript, progress)
    deadline = asyncio.timeout(timeout_seconds)
    # A next attempt finds the replayed exchange in its execution's trace already; a first
    # attempt (a retry resuming another execution) writes it into its own.
    transcript.journal = journal
    if journal is not None:
        journal.with_response = transcript.journal_response
    transcript.replayed_is_written = journal is not None and journal.attempt > 1
    code: str | None
    try:
        with running_with(hooks), journaling(journal):
            async with deadline:
                run.state = await definition.prepare(run)
                agent = _agent_for(definition, run, model, agents)
                prompt = await definition.user_prompt(run)
                output = await _drive(
                    agent,
                    prompt,
                    deps=run,
                    transcript=transcript,
                    progress=progress,
                    usage_limits=budget.usage_limits(definition.max_model_requests),
                    model_settings=model_settings,
                )
        result = definition.result_of(run, output)
    except ExecutionFailed as exc:
        code, explanation = exc.code or "unknown", exc.explanation
    except UsageLimitExceeded as exc:
        # A limit of the budget, else the definition's own cap on requests (a runaway loop).
        over_budget = budget.exceeded(progress.usage)
        if over_budget is not None:
            code, explanation = BUDGET_EXCEEDED, over_budget
        else:
            code, explanation = "runtime_error", public_explanation(exc)
    except UnexpectedModelBehavior as exc:
        if _retries_exhausted(exc):
            code = "max_retries_exceeded"
            explanation = await _summary(
                definition, model, model_settings, transcript, progress, exc, budget
            )
        else:
            code, explanation = "runtime_error", public_explanation(exc)
            logger.debug("execution %s: %s", run.execution_id, error_text(exc))
    except TimeoutError as exc:
        code = "runtime_error"
        explanation = (
            f"TimeoutError: the execution timed out after {timeout_seconds:g} seconds."
            if deadline.expired()
            else public_explanation(exc)
        )
    except Exception as exc:
        if _database_lost(exc):
            # An infrastructure fault, not the execution's: it is handed back and resumed.
            raise DatabaseLost(f"{type(exc).__name__}: {exc}") from exc
        failure = _deliberate_failure(exc)
        if failure is not None:
            code, explanation = failure.code or "unknown", failure.explanation
        elif isinstance(exc, ModelAPIError):
            # The provider failed (down, overloaded, refused): not a bug of ours.
            code, explanation = "runtime_error", log_provider_error(run.execution_id, exc)
        else:
            code, explanation = "runtime_error", public_explanation(exc)
            logger.exception("execution %s: unexpected error", run.execution_id)
    else:
        closing = _closing(transcript, progress, TraceEntry("result", RESULT_NOTE))
        return Outcome(usage=usage_dict(progress.usage), result=result, closing=closing)
    explanation = _clipped(explanation) or "The execution failed."
    ending = TraceEntry("failure", explanation, payload={"failure_code": code})
    return Outcome(
        usage=usage_dict(progress.usage),
        failure_code=code,
        failure_explanation=explanation,
        closing=_closing(transcript, progress, ending),
    )


def _closing(
    transcript: Transcript, progress: Progress, ending: TraceEntry
) -> tuple[TraceEntry, ...]:
    # What the run did before it ended (a tool call that stopped it, say) goes into the trace
    # even when the run ended with an exception; a part that cannot be described must not hide
    # the outcome, which is the source of truth.
    try:
        return (*transcript.unwritten(progress.messages()), transcript.stamped(ending))
    except Exception:
        logger.exception("could not describe the end of the run for its trace")
        return (transcript.stamped(ending),)


def _rejections(messages: list[ModelMessage], feedback: list[str]) -> list[str]:
    """What the model was told was wrong: validator feedback, else the retry prompts it got."""
    if feedback:
        return feedback
    found: list[str] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, RetryFeedbackPart) or (
                isinstance(part, ToolReturnPart) and part.outcome == "retried"
            ):
                found.append(str(part.content))
    return found


async def _summary(
    definition: ExecutionDefinition,
    model: Model,
    model_settings: RequestSettings | None,
    transcript: Transcript,
    progress: Progress,
    exc: UnexpectedModelBehavior,
    budget: Budget,
) -> str:
    """Ask the model, in one short call without tools, why it could not satisfy the validators;
    fall back to the last feedback it was given (also when the budget has no request left)."""
    rejections = _rejections(progress.messages(), progress.feedback)
    fallback = (
        f"The model could not satisfy the validators after {definition.max_retries} retries. "
        f"Last feedback: {rejections[-1]}"
        if rejections
        else public_explanation(exc)
    )
    if budget.spent(progress.usage):
        return fallback
    listing = "\n".join(f"- {text}" for text in rejections[-5:]) or f"- {exc.message}"
    prompt = f"Task: {definition.name}.\n\nThe checks rejected your answers with:\n{listing}"
    # Built for this rare moment only: not worth a cached Agent.
    agent: Agent[None, str] = Agent(model, output_type=str, system_prompt=SUMMARY_INSTRUCTIONS)
    summary = Progress()
    # The summary's own exchange is not the run's: nothing of it was replayed.
    transcript.replayed_is_written = False
    try:
        # The run's last parts go into the trace before the summary exchange.
        await transcript.sync(progress.messages())
        async with asyncio.timeout(SUMMARY_TIMEOUT_SECONDS):
            text = await _drive(
                agent,
                prompt,
                deps=None,
                transcript=transcript,
                progress=summary,
                usage_limits=UsageLimits(request_limit=1),
                model_settings=model_settings,
            )
    except Exception as summary_error:
        logger.warning("no failure summary from the model: %s", public_explanation(summary_error))
        logger.debug("the failed summary request in full: %s", error_text(summary_error))
        text = ""
    finally:
        progress.usage.incr(summary.usage)
    return str(text).strip() or fallback
