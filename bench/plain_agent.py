"""The baseline of the ``pydantic_ai`` scenario: an execution type's agent run with plain
``agent.run()`` in one process, no service around it.

``python -m bench.plain_agent --model-url URL --key KEY --input JSON --count N --concurrency C``
builds the Agent the worker builds for that definition (the same system prompt, tools, output
type, retries and validators, as one output validator), on pydantic-ai's own OpenAI model
pointed at the benchmark's mock server, runs ``count`` runs ``concurrency`` at a time after a
warm-up, and prints one JSON line: the runs, how many ended with output, the wall time and this
process's CPU seconds over the measured runs.

``--durable --dsn DSN``: the durable floor, the least persistence a durable execution service
needs around the same runs, in the same process through one asyncpg pool (``concurrency``
connections, opened before the measured runs; no reset on release, as these statements leave
no session state) on two scratch tables it creates in that database: per run, an INSERT of the
execution row with its input (jsonb) at submit, an UPDATE to running, one INSERT per model
response (its JSON, as the journal) as it arrives, an UPDATE to finished with the result. Each
statement is its own transaction. Also reported: ``postgres_cpu_s``, the CPU of the pool's
PostgreSQL backends over the measured runs, and ``transactions``.
"""

import argparse
import asyncio
import inspect
import json
import resource
import time
from pathlib import Path
from typing import Any

import asyncpg
from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.messages import ModelMessagesTypeAdapter
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_core import to_json

from app.definitions.base import ExecutionDefinition
from app.definitions.registry import all_definitions
from app.definitions.run import ExecutionRun
from app.definitions.validators import STOP_EXECUTION_TOOL, ExecutionFailed, Fail, Retry
from bench.cpu import process_seconds

WARM_UP = 10
DURABLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_durable_executions (
    id bigserial PRIMARY KEY,
    status text NOT NULL,
    input jsonb NOT NULL,
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE TABLE IF NOT EXISTS bench_durable_journal (
    execution_id bigint NOT NULL REFERENCES bench_durable_executions (id),
    step int NOT NULL,
    response jsonb NOT NULL,
    PRIMARY KEY (execution_id, step)
);
"""
SUBMITTED = """
INSERT INTO bench_durable_executions (status, input) VALUES ('pending', $1) RETURNING id
"""
RUNNING = "UPDATE bench_durable_executions SET status = 'running', started_at = now() WHERE id = $1"
JOURNAL = "INSERT INTO bench_durable_journal (execution_id, step, response) VALUES ($1, $2, $3)"
FINISHED = """
UPDATE bench_durable_executions SET status = 'finished', result = $2, finished_at = now()
WHERE id = $1
"""


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


class Durable:
    """The durable floor's persistence: one asyncpg pool, four kinds of statement."""

    def __init__(self, pool: Any, backends: list[int]) -> None:
        self.pool = pool
        self.backends = backends
        self.transactions = 0

    @classmethod
    async def open(cls, dsn: str, size: int) -> "Durable":
        async def no_reset(connection: Any) -> None:
            return None

        pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size, reset=no_reset)
        await pool.execute(DURABLE_SCHEMA)
        held = [await pool.acquire() for _ in range(size)]
        backends = [await c.fetchval("SELECT pg_backend_pid()") for c in held]
        for connection in held:
            await pool.release(connection)
        return cls(pool, backends)

    def backend_seconds(self) -> float:
        return sum(process_seconds(pid) for pid in self.backends)

    async def run(self, agent: Agent, prompt: str, run: ExecutionRun, raw_input: str) -> bool:
        execution_id = await self.pool.fetchval(SUBMITTED, raw_input)
        await self.pool.execute(RUNNING, execution_id)
        step = 0
        async with agent.iter(prompt, deps=run) as agent_run:
            async for node in agent_run:
                if Agent.is_call_tools_node(node):
                    response = ModelMessagesTypeAdapter.dump_json([node.model_response])[1:-1]
                    await self.pool.execute(JOURNAL, execution_id, step, response.decode())
                    step += 1
        assert agent_run.result is not None
        output = agent_run.result.output
        await self.pool.execute(FINISHED, execution_id, to_json(output).decode())
        self.transactions += 3 + step
        return output is not None


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    definition = next(d for d in all_definitions() if d.key == args.key)
    raw_input = json.loads(args.input)
    model = OpenAIChatModel(
        "mock", provider=OpenAIProvider(base_url=args.model_url, api_key="bench-no-key")
    )
    first = _run_of(definition, raw_input, 0)
    first.state = await definition.prepare(first)
    agent = _agent(definition, first, model)
    durable = await Durable.open(args.dsn, args.concurrency) if args.durable else None

    async def one(number: int) -> bool:
        run = _run_of(definition, raw_input, number)
        run.state = await definition.prepare(run)
        prompt = await definition.user_prompt(run)
        if durable is not None:
            return await durable.run(agent, prompt, run, args.input)
        result = await agent.run(prompt, deps=run)
        return result.output is not None

    async def runs(count: int) -> list[bool]:
        limit = asyncio.Semaphore(args.concurrency)

        async def bounded(number: int) -> bool:
            async with limit:
                return await one(number)

        return await asyncio.gather(*(bounded(n) for n in range(count)))

    await runs(WARM_UP)
    backends_before = durable.backend_seconds() if durable else 0.0
    transactions_before = durable.transactions if durable else 0
    cpu_before, started = _cpu_seconds(), time.perf_counter()
    outputs = await runs(args.count)
    figures: dict[str, Any] = {
        "runs": args.count,
        "with_output": sum(outputs),
        "wall_s": round(time.perf_counter() - started, 3),
        "cpu_s": round(_cpu_seconds() - cpu_before, 3),
    }
    if durable is not None:
        figures["postgres_cpu_s"] = round(durable.backend_seconds() - backends_before, 3)
        figures["transactions"] = durable.transactions - transactions_before
        await durable.pool.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--durable", action="store_true", help="the durable floor (see above)")
    parser.add_argument("--dsn", help="with --durable: the database of its scratch tables")
    args = parser.parse_args()
    if args.durable and not args.dsn:
        parser.error("--durable needs --dsn")
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        print(json.dumps(runner.run(_main(args))), flush=True)


if __name__ == "__main__":
    main()
