"""The baseline of the ``pydantic_ai`` scenario: an execution type's agent run with plain
``agent.run()`` in one process, no service around it.

``python -m bench.plain_agent --model-url URL --key KEY --input JSON --count N --concurrency C``
builds the Agent the worker builds for that definition (the same system prompt, tools, output
type, retries and validators, as one output validator), on pydantic-ai's own OpenAI model
pointed at the benchmark's mock server, runs ``count`` runs ``concurrency`` at a time after a
warm-up, and prints one JSON line: the runs, how many ended with output, the wall time and this
process's CPU seconds over the measured runs.
"""

import argparse
import asyncio
import inspect
import json
import resource
import time
from pathlib import Path
from typing import Any

from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from app.definitions.base import ExecutionDefinition
from app.definitions.registry import all_definitions
from app.definitions.run import ExecutionRun
from app.definitions.validators import STOP_EXECUTION_TOOL, ExecutionFailed, Fail, Retry

WARM_UP = 10


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_of(
    definition: ExecutionDefinition, raw_input: dict[str, Any], number: int
) -> ExecutionRun:
    # No database: the runs measured here read none (their input names what they work on).
    return ExecutionRun(
        execution_id=number,
        agent_id=1,
        dataset_id=1,
        user_id=1,
        conversation_id=number,
        input=definition.Input.model_validate(raw_input),
        sessionmaker=None,  # type: ignore[arg-type]
        media_root=Path("."),
    )


def _agent(definition: ExecutionDefinition, run: ExecutionRun, model: OpenAIChatModel) -> Agent:
    agent: Agent[ExecutionRun, Any] = Agent(
        model,
        output_type=definition.output_type(run),
        system_prompt=definition.system_prompt(run),
        deps_type=ExecutionRun,
        tools=[*definition.tools(run), STOP_EXECUTION_TOOL],
        retries={"tools": definition.max_retries, "output": definition.max_retries},
        name=definition.key,
    )

    async def validate(ctx: RunContext[ExecutionRun], output: Any) -> Any:
        for validator in definition.validators:
            verdict = validator(ctx.deps, output)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if isinstance(verdict, Retry):
                raise ModelRetry(verdict.feedback)
            if isinstance(verdict, Fail):
                raise ExecutionFailed(verdict.explanation, verdict.code)
        return output

    agent.output_validator(validate)
    return agent


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    definition = next(d for d in all_definitions() if d.key == args.key)
    raw_input = json.loads(args.input)
    model = OpenAIChatModel(
        "mock", provider=OpenAIProvider(base_url=args.model_url, api_key="bench-no-key")
    )
    first = _run_of(definition, raw_input, 0)
    first.state = await definition.prepare(first)
    agent = _agent(definition, first, model)

    async def one(number: int) -> bool:
        run = _run_of(definition, raw_input, number)
        run.state = await definition.prepare(run)
        prompt = await definition.user_prompt(run)
        result = await agent.run(prompt, deps=run)
        return result.output is not None

    async def runs(count: int) -> list[bool]:
        limit = asyncio.Semaphore(args.concurrency)

        async def bounded(number: int) -> bool:
            async with limit:
                return await one(number)

        return await asyncio.gather(*(bounded(n) for n in range(count)))

    await runs(WARM_UP)
    cpu_before, started = _cpu_seconds(), time.perf_counter()
    outputs = await runs(args.count)
    return {
        "runs": args.count,
        "with_output": sum(outputs),
        "wall_s": round(time.perf_counter() - started, 3),
        "cpu_s": round(_cpu_seconds() - cpu_before, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        print(json.dumps(runner.run(_main(args))), flush=True)


if __name__ == "__main__":
    main()
