"""The pydantic-ai run of one execution: prompt, tools, validators, retries and the outcome.

One ``Agent`` per run, built from the definition. Its validators become one pydantic-ai output
validator: *retry* raises ``ModelRetry`` with the feedback, *fail* raises ``ExecutionFailed``,
which ends the run. Outcomes (DESIGN.md):

- all validators pass → finished, the result;
- a validator fails, or the model calls ``stop_execution`` → ``validation_failed`` (or the
  definition's own code) with the reason;
- retries exhausted → ``max_retries_exceeded`` with a short summary the model is asked for;
- anything unexpected (provider down, a bug, the time limit) → ``runtime_error`` with
  ``ExceptionType: message``.

Nothing here holds a database session across a model call: the transcript and the tools use a
short session each time.
"""

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import (
    Agent,
    AgentRunResult,
    ModelRequestNode,
    ModelRetry,
    RunContext,
    RunUsage,
    UnexpectedModelBehavior,
    UsageLimits,
)
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import ModelMessage, RetryFeedbackPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings as RequestSettings
from pydantic_graph import End

from app.conversations.trace import TraceEntry
from app.definitions.base import ExecutionDefinition
from app.definitions.run import ExecutionRun
from app.definitions.validators import STOP_EXECUTION_TOOL, ExecutionFailed, Fail, Retry
from workers.transcript import Transcript

logger = logging.getLogger(__name__)

# The summary asked for after the retries are exhausted is one short answer, time-boxed apart
# from the execution's own limit.
SUMMARY_TIMEOUT_SECONDS = 30.0
MAX_EXPLANATION_CHARS = 2000

SUMMARY_INSTRUCTIONS = (
    "You tried to complete a task, but each answer you gave was rejected by automatic checks, "
    "and no attempts are left. Explain to the user, in plain language and at most two "
    "sentences, why you could not satisfy the checks. Do not apologise; do not use markdown."
)


@dataclass(frozen=True)
class Outcome:
    usage: dict[str, int]
    result: Any = None
    failure_code: str | None = None
    failure_explanation: str | None = None

    @property
    def finished(self) -> bool:
        return self.failure_code is None

    @property
    def status(self) -> str:
        return "finished" if self.finished else "failed"


@dataclass
class _Progress:
    """What the run left behind, also when it ended with an exception."""

    usage: RunUsage = field(default_factory=RunUsage)
    messages: Callable[[], list[ModelMessage]] = list
    feedback: list[str] = field(default_factory=list)


def usage_dict(usage: RunUsage) -> dict[str, int]:
    return {
        "requests": usage.requests,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
    }


def error_text(exc: BaseException) -> str:
    """``ExceptionType: message``, naming the public class (pydantic-ai raises private
    subclasses such as ``_HTTPModelServerError`` of ``ModelHTTPError``)."""
    name = next(
        (c.__name__ for c in type(exc).__mro__ if not c.__name__.startswith("_")),
        type(exc).__name__,
    )
    message = str(exc).strip()
    return f"{name}: {message}" if message else name


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


def _output_validator(
    definition: ExecutionDefinition, transcript: Transcript, progress: _Progress
) -> Callable[[RunContext[ExecutionRun], Any], Awaitable[Any]]:
    async def validate(ctx: RunContext[ExecutionRun], output: Any) -> Any:
        if ctx.partial_output:
            return output
        for validator in definition.validators:
            verdict = validator(ctx.deps, output)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            name = getattr(validator, "__name__", repr(validator))
            if isinstance(verdict, Retry):
                progress.feedback.append(verdict.feedback)
                await transcript.note(
                    "validation", verdict.feedback, validator=name, verdict="retry"
                )
                raise ModelRetry(verdict.feedback)
            if isinstance(verdict, Fail):
                await transcript.note(
                    "validation", verdict.explanation, validator=name, verdict="fail"
                )
                raise ExecutionFailed(verdict.explanation, verdict.code)
        return output

    return validate


async def _drive(
    agent: Agent[Any, Any],
    prompt: str,
    *,
    deps: Any,
    transcript: Transcript,
    progress: _Progress,
    usage_limits: UsageLimits,
) -> Any:
    """Run the agent node by node, writing each request before it is sent and each response
    and tool result as soon as it is there."""
    result: AgentRunResult[Any] | None
    async with agent.iter(
        prompt, deps=deps, usage=progress.usage, usage_limits=usage_limits
    ) as agent_run:
        progress.messages = agent_run.all_messages
        async for node in agent_run:
            if isinstance(node, End):
                # The last tool result is written with the outcome, in one transaction.
                break
            messages = agent_run.all_messages()
            if isinstance(node, ModelRequestNode):
                messages.append(node.request)
            await transcript.sync(messages)
        result = agent_run.result
    if result is None:
        raise RuntimeError("the agent run ended without a result")
    return result.output


def _build_agent(
    definition: ExecutionDefinition,
    run: ExecutionRun,
    model: Model,
    model_settings: RequestSettings | None,
    transcript: Transcript,
    progress: _Progress,
) -> Agent[ExecutionRun, Any]:
    agent: Agent[ExecutionRun, Any] = Agent(
        model,
        output_type=definition.output_type(run),
        system_prompt=definition.system_prompt(run),
        deps_type=ExecutionRun,
        tools=[*definition.tools(run), STOP_EXECUTION_TOOL],
        retries={"tools": definition.max_retries, "output": definition.max_retries},
        model_settings=model_settings,
        name=definition.key,
    )
    agent.output_validator(_output_validator(definition, transcript, progress))
    return agent


async def run_definition(
    definition: ExecutionDefinition,
    run: ExecutionRun,
    model: Model,
    transcript: Transcript,
    *,
    timeout_seconds: float,
    model_settings: RequestSettings | None = None,
    usage: RunUsage | None = None,
) -> Outcome:
    """Run the execution to its outcome. Never raises, except on cancellation (``usage``,
    if given, then tells what the run used so far)."""
    progress = _Progress(usage=usage if usage is not None else RunUsage())
    deadline = asyncio.timeout(timeout_seconds)
    code: str | None
    try:
        async with deadline:
            run.state = await definition.prepare(run)
            agent = _build_agent(definition, run, model, model_settings, transcript, progress)
            prompt = await definition.user_prompt(run)
            output = await _drive(
                agent,
                prompt,
                deps=run,
                transcript=transcript,
                progress=progress,
                usage_limits=UsageLimits(request_limit=definition.max_model_requests),
            )
        result = definition.result_of(run, output)
    except ExecutionFailed as exc:
        code, explanation = exc.code or "unknown", exc.explanation
    except UnexpectedModelBehavior as exc:
        if _retries_exhausted(exc):
            code = "max_retries_exceeded"
            explanation = await _summary(
                definition, model, model_settings, transcript, progress, exc
            )
        else:
            code, explanation = "runtime_error", error_text(exc)
    except TimeoutError as exc:
        code = "runtime_error"
        explanation = (
            f"TimeoutError: the execution timed out after {timeout_seconds:g} seconds."
            if deadline.expired()
            else error_text(exc)
        )
    except Exception as exc:
        failure = _deliberate_failure(exc)
        if failure is not None:
            code, explanation = failure.code or "unknown", failure.explanation
        else:
            code, explanation = "runtime_error", error_text(exc)
            if isinstance(exc, ModelAPIError):
                # The provider failed (down, overloaded, refused): not a bug of ours.
                logger.warning("execution %s: %s", run.execution_id, explanation)
            else:
                logger.exception("execution %s: unexpected error", run.execution_id)
    else:
        await _close_transcript(transcript, progress, "result", "The result passed validation.")
        return Outcome(usage=usage_dict(progress.usage), result=result)
    explanation = _clipped(explanation) or "The execution failed."
    await _close_transcript(transcript, progress, "failure", explanation, failure_code=code)
    return Outcome(
        usage=usage_dict(progress.usage), failure_code=code, failure_explanation=explanation
    )


async def _close_transcript(
    transcript: Transcript, progress: _Progress, role: str, content: str, **payload: Any
) -> None:
    # What the run did before it ended (a tool call that stopped it, say) is written even when
    # the run ended with an exception; a transcript that cannot be written must not hide the
    # outcome, which is the source of truth.
    try:
        await transcript.sync(
            progress.messages(), TraceEntry(role, content, payload=payload or None)
        )
    except Exception:
        logger.exception("could not write the end of the transcript")


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
    progress: _Progress,
    exc: UnexpectedModelBehavior,
) -> str:
    """Ask the model, in one short call without tools, why it could not satisfy the validators;
    fall back to the last feedback it was given."""
    rejections = _rejections(progress.messages(), progress.feedback)
    fallback = (
        f"The model could not satisfy the validators after {definition.max_retries} retries. "
        f"Last feedback: {rejections[-1]}"
        if rejections
        else error_text(exc)
    )
    listing = "\n".join(f"- {text}" for text in rejections[-5:]) or f"- {exc.message}"
    prompt = f"Task: {definition.name}.\n\nThe checks rejected your answers with:\n{listing}"
    agent: Agent[None, str] = Agent(
        model, output_type=str, system_prompt=SUMMARY_INSTRUCTIONS, model_settings=model_settings
    )
    summary = _Progress()
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
            )
    except Exception as summary_error:
        logger.warning("no failure summary from the model: %s", error_text(summary_error))
        text = ""
    finally:
        progress.usage.incr(summary.usage)
    return str(text).strip() or fallback
