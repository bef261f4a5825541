"""Claiming an execution for one attempt: the conditional UPDATE that one worker wins.

A pending execution is claimed by ``pending → in_progress``. An in_progress one only when it is
orphaned (``app.executions.transitions.orphaned``: no heartbeat for ``stale_after`` seconds, or
handed back): its worker is gone, and the claim is its next attempt. A live worker's execution
is never claimed, whatever duplicate of its job another worker picks up.
"""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.conversations.models import ConversationFile
from app.definitions.run import AttachedFile
from app.executions.models import (
    CANCELLED,
    AgenticExecution,
    ExecutionStatus,
    cancelled_explanation,
)
from app.executions.transitions import mark_failed, mark_in_progress, orphaned, restart_attempt

# An orphaned in_progress execution was being run by a worker that died (crash, kill, lost
# connection) or stopped (shutdown). It is run again once; after that it fails as worker_lost
# rather than loop.
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class Claim:
    execution: AgenticExecution
    agent: Agent
    files: list[AttachedFile]
    attempt: int


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
        await mark_failed(session, execution_id, CANCELLED, explanation)
        return CANCELLED
    if execution.status == ExecutionStatus.PENDING:
        moved = await mark_in_progress(session, execution_id)
    elif execution.status == ExecutionStatus.IN_PROGRESS:
        if execution.attempts >= MAX_ATTEMPTS:
            explanation = (
                f"The worker running this execution stopped {execution.attempts} times before "
                "it finished (crash, restart or lost connection); it is not tried again."
            )
            await mark_failed(session, execution_id, "worker_lost", explanation)
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
    attached = [AttachedFile(f.filename, f.content_type, f.size, f.storage_key) for f in files]
    return Claim(execution, agent, attached, execution.attempts + 1)
