"""Claiming an execution for one attempt: the conditional UPDATE that one worker wins.

A pending execution is claimed by ``pending → in_progress``. An in_progress one only when it is
orphaned (``app.executions.transitions.orphaned``: no heartbeat for ``stale_after`` seconds, or
handed back): its worker is gone, and the claim is its next attempt. A live worker's execution
is never claimed, whatever duplicate of its job another worker picks up.

The common case, a pending execution, is claimed in one statement (``claim_pending``, compiled
once and run on asyncpg: ``app.core.sql``): the UPDATE joins the agent and returns what the run
needs, files included. Anything else (missing, running, orphaned, cancelled, terminal) is
decided by ``claim_execution`` in a transaction.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agents.models import Agent
from app.conversations.models import ConversationFile
from app.core import sql
from app.definitions.run import AttachedFile
from app.executions.models import (
    CANCELLED,
    AgenticExecution,
    ExecutionStatus,
    cancelled_explanation,
)
from app.executions.transitions import (
    mark_failed,
    mark_in_progress,
    orphaned,
    restart_attempt,
    start_pending,
)

# An orphaned in_progress execution was being run by a worker that died (crash, kill, lost
# connection) or stopped (shutdown). It is run again once; after that it fails as worker_lost
# rather than loop.
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class Claim:
    """What one attempt runs: the execution, its agent, its files."""

    execution_id: int
    execution_key: str
    input: dict[str, Any]
    user_id: int
    conversation_id: int
    started_at: datetime
    agent_id: int
    agent_type: str
    dataset_id: int
    model_settings: dict[str, Any]
    files: list[AttachedFile]
    attempt: int


# The execution's files, oldest first, as one JSON array of [filename, content type, size,
# storage key] in the claim's RETURNING (no second query).
_FILES = (
    select(
        func.coalesce(
            func.json_agg(
                aggregate_order_by(
                    func.json_build_array(
                        ConversationFile.filename,
                        ConversationFile.content_type,
                        ConversationFile.size,
                        ConversationFile.storage_key,
                    ),
                    ConversationFile.id,
                )
            ),
            func.json_build_array(),
            type_=JSON,
        )
    )
    .where(ConversationFile.conversation_id == AgenticExecution.conversation_id)
    .scalar_subquery()
)


# pending → in_progress, joined with the agent, answering what the run needs.
_CLAIM_PENDING = sql.compile_statement(
    start_pending()
    .where(Agent.id == AgenticExecution.agent_id)
    .returning(
        AgenticExecution.execution_key,
        AgenticExecution.input,
        AgenticExecution.user_id,
        AgenticExecution.conversation_id,
        AgenticExecution.started_at,
        AgenticExecution.attempts,
        Agent.id,
        Agent.agent_type,
        Agent.dataset_id,
        Agent.model_settings,
        _FILES,
    )
)


async def claim_pending(connection: AsyncConnection, execution_id: int) -> Claim | None:
    """Claim a pending execution in one statement (on an autocommit connection: one round
    trip); None when it is not pending, or its agent is gone."""
    row = await sql.fetchrow(connection, _CLAIM_PENDING, execution_id=execution_id)
    return None if row is None else _claimed(execution_id, tuple(row))


def _claimed(execution_id: int, row: tuple[Any, ...]) -> Claim:
    (key, given, user_id, conversation_id, started_at, attempts) = row[:6]
    (agent_id, agent_type, dataset_id, model_settings, files) = row[6:]
    return Claim(
        execution_id=execution_id,
        execution_key=key,
        input=given,
        user_id=user_id,
        conversation_id=conversation_id,
        started_at=started_at,
        agent_id=agent_id,
        agent_type=agent_type,
        dataset_id=dataset_id,
        model_settings=model_settings or {},
        files=[AttachedFile(*file) for file in files],
        # The UPDATE returns the attempts counted with this one.
        attempt=attempts,
    )


async def claim_execution(
    session: AsyncSession, execution_id: int, stale_after: float
) -> Claim | str:
    """Move the execution to ``in_progress`` for this attempt, or say why there is nothing to do."""
    query = (
        select(AgenticExecution, Agent, orphaned(stale_after))
        .join(Agent, Agent.id == AgenticExecution.agent_id)
        .where(AgenticExecution.id == execution_id)
    )
    row = (await session.execute(query)).first()
    if row is None:
        return "missing"
    execution, agent, is_orphaned = row
    if execution.status == ExecutionStatus.IN_PROGRESS and not is_orphaned:
        # Its worker is alive (a duplicate of its job was picked up): leave it alone.
        return "running elsewhere"
    if execution.status == ExecutionStatus.IN_PROGRESS and execution.cancel_requested_at:
        # Cancelled while its worker was gone: nothing left to run.
        explanation = cancelled_explanation(execution.cancel_requested_by or "a user")
        # Conditional on the attempt seen, as a takeover is: another worker may decide too.
        await mark_failed(session, execution_id, CANCELLED, explanation, attempt=execution.attempts)
        return CANCELLED
    if execution.status == ExecutionStatus.PENDING:
        moved = await mark_in_progress(session, execution_id)
    elif execution.status == ExecutionStatus.IN_PROGRESS:
        if execution.attempts >= MAX_ATTEMPTS:
            explanation = (
                f"The worker running this execution stopped {execution.attempts} times before "
                "it finished (crash, restart or lost connection); it is not tried again."
            )
            await mark_failed(
                session, execution_id, "worker_lost", explanation, attempt=execution.attempts
            )
            return "worker_lost"
        moved = await restart_attempt(session, execution_id, execution.attempts, stale_after)
    else:
        return f"already {execution.status}"
    if not moved:
        return "claimed by another worker"
    files = await session.scalars(
        select(ConversationFile)
        .where(ConversationFile.conversation_id == execution.conversation_id)
        .order_by(ConversationFile.id)
    )
    return Claim(
        execution_id=execution_id,
        execution_key=execution.execution_key,
        input=execution.input,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        started_at=execution.started_at,
        agent_id=agent.id,
        agent_type=agent.agent_type,
        dataset_id=agent.dataset_id,
        model_settings=agent.model_settings or {},
        files=[AttachedFile(f.filename, f.content_type, f.size, f.storage_key) for f in files],
        attempt=execution.attempts + 1,
    )
