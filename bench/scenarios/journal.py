"""journal: what durable runs cost, per tool call, and what a resume costs.

The worker's own loop (``workers.run.loop.run_definition``) in the harness process, on the scratch
database, with a scripted model (pydantic-ai ``FunctionModel``, no HTTP: only the journal's and
the trace's statements are measured) that makes ``STEPS`` tool calls, one per model response,
then answers. Each run is one claimed execution (claimed as the worker claims it). Interleaved,
``ROUNDS`` times each:

- ``without``: the run with no journal (the trace only, as before durable runs);
- ``read_only``: journaled, the tool declared ``@read_only`` (per step: the model response's
  row and the tool result's row);
- ``at_most_once``: journaled, the tool declared ``@effectful(idempotent=False)`` (one more
  row before the tool runs).

``ms_per_tool_call`` is (journaled - without) / steps: each step is one model response and one
tool call, so the figure is the whole journal cost of a step. Then the resume: a journaled run
taken over as its next attempt, which reads the journal and replays every step (the model is
not asked); reported beside the same run done live, and beside what the replayed model calls
would have cost at a hosted model's latency.

The machine is shared: read the figures for their order of magnitude (medians of interleaved
rounds, which the load moves alike).
"""

import statistics
import time
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_ai import RunContext, Tool
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import update

from bench.context import BenchRun
from bench.scenarios import Result

STEPS = 10
ROUNDS = 15
QUICK_ROUNDS = 5
HOSTED_MODEL_LATENCY = 0.5


async def _look(ctx: RunContext[Any], key: str) -> str:
    return f"seen {key}"


async def _touch(ctx: RunContext[Any], key: str) -> str:
    return f"touched {key}"


def _script(tool: str, steps: int) -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        done = sum(1 for m in messages if isinstance(m, ModelResponse))
        if done < steps:
            return ModelResponse(parts=[ToolCallPart(tool, {"key": f"k{done}"})])
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"ok": True})])

    return FunctionModel(respond)


def _refusing(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    raise AssertionError("a resumed run asked the model what the journal holds")


async def run(bench: BenchRun) -> Result:
    from app.core.config import Settings
    from app.core.db import create_engine, create_sessionmaker
    from app.definitions.base import ExecutionDefinition
    from app.definitions.effects import effectful, read_only
    from app.definitions.run import ExecutionRun
    from app.executions.models import AgenticExecution
    from app.journal.repository import load_steps
    from workers.run.agent_builder import AgentCache
    from workers.run.claim import Claim, claim_pending
    from workers.run.database import in_one_statement
    from workers.run.durability import RunJournal
    from workers.run.loop import run_definition
    from workers.run.transcript import Transcript

    class NoInput(BaseModel):
        model_config = ConfigDict(extra="forbid")

    tools = {
        "look": Tool(read_only(_look), takes_ctx=True, name="look"),
        "touch": Tool(effectful(idempotent=False)(_touch), takes_ctx=True, name="touch"),
    }

    class Steps(ExecutionDefinition):
        key = "bench-journal"
        agent_type = "structured-task"
        name = "Journal benchmark"
        version = "1"
        Input = NoInput
        max_model_requests = STEPS + 5

        def __init__(self, tool: str) -> None:
            self.tool = tool

        def tools(self, run: ExecutionRun) -> tuple[Tool[ExecutionRun], ...]:
            return (tools[self.tool],)

    definitions = {"look": Steps("look"), "touch": Steps("touch")}
    # One model and one cache: every run of a kind reuses its Agent, as a worker does.
    models = {tool: _script(tool, STEPS) for tool in definitions}
    refusing = FunctionModel(_refusing)
    agents = AgentCache()
    rounds = QUICK_ROUNDS if bench.sizes.overhead_executions < 200 else ROUNDS
    settings = Settings(database_url=bench.stack.database_url)
    engine = create_engine(settings, pool_size=4)
    sessionmaker = create_sessionmaker(engine)

    async def claimed() -> Claim:
        async with bench.client(bench.user_token) as client:
            response = await client.post(
                f"/api/agents/{bench.agent_id}/agentic-executions/",
                json={"execution_key": "structured-task", "input": {"instructions": "Steps."}},
            )
            response.raise_for_status()
            execution_id = int(response.json()["id"])
        claim = await in_one_statement(
            sessionmaker, lambda c: claim_pending(c, execution_id), retry_for=0, what="claim"
        )
        assert claim is not None
        return claim

    async def one_run(
        claim: Claim, tool: str, journal: RunJournal | None, model: FunctionModel, attempt: int
    ) -> float:
        transcript = Transcript(
            sessionmaker,
            claim.conversation_id,
            execution_id=claim.execution_id,
            attempt=attempt,
        )
        deps = ExecutionRun(
            execution_id=claim.execution_id,
            agent_id=claim.agent_id,
            dataset_id=claim.dataset_id,
            user_id=claim.user_id,
            conversation_id=claim.conversation_id,
            input=NoInput(),
            sessionmaker=sessionmaker,
            media_root=bench.work_dir,
        )
        started = time.perf_counter()
        outcome = await run_definition(
            definitions[tool],
            deps,
            model,
            transcript,
            timeout_seconds=60,
            agents=agents,
            journal=journal,
        )
        elapsed = time.perf_counter() - started
        assert outcome.failure_code is None, outcome.failure_explanation
        return elapsed * 1000

    def journal_of(claim: Claim, attempt: int, steps: Any = ()) -> RunJournal:
        return RunJournal(
            sessionmaker, execution_id=claim.execution_id, attempt=attempt, steps=steps
        )

    runs: dict[str, list[float]] = {"without": [], "read_only": [], "at_most_once": []}
    resumes: dict[str, list[float]] = {"load_ms": [], "replay_ms": [], "live_ms": []}
    try:
        for tool in ("look", "touch"):  # warm-up: agents built, statements compiled
            claim = await claimed()
            await one_run(claim, tool, journal_of(claim, 1), models[tool], 1)
        for _ in range(rounds):
            for label, tool, journaled in (
                ("without", "look", False),
                ("read_only", "look", True),
                ("at_most_once", "touch", True),
            ):
                claim = await claimed()
                journal = journal_of(claim, 1) if journaled else None
                runs[label].append(await one_run(claim, tool, journal, models[tool], 1))
                if label != "at_most_once":
                    continue
                resumes["live_ms"].append(runs[label][-1])
                # The next attempt takes it over (as a claim after the worker died would).
                async with sessionmaker() as session, session.begin():
                    await session.execute(
                        update(AgenticExecution)
                        .where(AgenticExecution.id == claim.execution_id)
                        .values(attempts=2)
                    )
                started = time.perf_counter()
                async with sessionmaker() as session:
                    steps = await load_steps(session, claim.execution_id)
                resumes["load_ms"].append((time.perf_counter() - started) * 1000)
                resumed = journal_of(claim, 2, steps)
                replay = await one_run(claim, tool, resumed, refusing, 2)
                assert resumed.replayed.model_responses == STEPS + 1
                resumes["replay_ms"].append(replay)
    finally:
        await engine.dispose()

    median = {label: statistics.median(values) for label, values in runs.items()}
    per_call = {
        label: round((median[label] - median["without"]) / STEPS, 3)
        for label in ("read_only", "at_most_once")
    }
    resume = {key: round(statistics.median(values), 2) for key, values in resumes.items()}
    resume["resume_ms"] = round(resume["load_ms"] + resume["replay_ms"], 2)
    resume["model_calls_replayed"] = STEPS + 1
    resume["their_time_at_hosted_latency_ms"] = (STEPS + 1) * HOSTED_MODEL_LATENCY * 1000
    figures = {
        "steps_per_run": STEPS,
        # Statements committed per step (a model response and a tool call): the trace's two,
        # and the journal's.
        "statements_per_step": {"without": 2, "read_only": 4, "at_most_once": 5},
        "rounds": rounds,
        "run_ms_median": {label: round(value, 2) for label, value in median.items()},
        "ms_per_tool_call": per_call,
        "resume": resume,
    }
    return Result(
        figures=figures,
        ratio=None,
        target="reported: journal ms per tool call (with - without), resume ms",
        met=None,
        notes=[
            f"journal: +{per_call['read_only']} ms per step with a read-only tool, "
            f"+{per_call['at_most_once']} ms with an at-most-once tool (shared machine)",
            f"resume of {STEPS + 1} model responses and {STEPS} tool results: "
            f"{resume['resume_ms']} ms (journal read {resume['load_ms']} ms) vs "
            f"{resume['live_ms']} ms live at model latency 0",
        ],
        details={"runs_ms": runs, "resumes_ms": resumes},
    )
