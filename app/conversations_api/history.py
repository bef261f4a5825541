"""Conversations as Enthusiast's web client reads them: a ``history`` of the messages a person
would read (Enthusiast's ``ConversationContentSerializer``), and the list of chats.

The full trace (tool calls, tool results, retries, the model's usage) stays in ``messages``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.auth.models import User
from app.conversations.models import Conversation, Message
from app.conversations.schemas import HistoryEntryOut
from app.executions.models import AgenticExecution

# Trace roles shown in the history, as Enthusiast's message types; the others (tool calls and
# results, retries, failure notes) are internal, as Enthusiast's "function" and
# "intermediate_step" messages are.
HISTORY_TYPES = {"system": "system", "user": "human", "assistant": "ai", "file": "file"}


def history_entry(message: Message) -> HistoryEntryOut | None:
    """The history entry of a trace message, or None for an internal one."""
    kind = HISTORY_TYPES.get(message.role)
    if kind is None:
        return None
    if kind != "file":
        return HistoryEntryOut(id=message.id, text=message.content, type=kind)
    # Enthusiast splits the name at its last dot and shows no text for a file.
    name = PurePath(str((message.payload or {}).get("filename", "")))
    return HistoryEntryOut(
        id=message.id, text="", type=kind, file_name=name.stem, file_type=name.suffix[1:]
    )


def history(messages: Sequence[Message]) -> list[HistoryEntryOut]:
    entries = (history_entry(message) for message in messages)
    return [entry for entry in entries if entry is not None]


async def is_execution_conversation(session: AsyncSession, conversation_id: int) -> bool:
    query = select(exists().where(AgenticExecution.conversation_id == conversation_id))
    return bool(await session.scalar(query))


@dataclass(frozen=True)
class ConversationFilters:
    data_set_id: int | None = None
    agent_id: int | None = None


def _chats(user: User, filters: ConversationFilters) -> Select[Conversation, Agent]:
    """The user's conversations that are no execution's, as Enthusiast's list (its own, admins
    included). This service starts no chats, so these are rare."""
    an_executions = exists().where(AgenticExecution.conversation_id == Conversation.id)
    query = (
        select(Conversation, Agent)
        .join(Agent, Agent.id == Conversation.agent_id)
        .where(Conversation.user_id == user.id, ~an_executions)
    )
    if filters.agent_id is not None:
        query = query.where(Conversation.agent_id == filters.agent_id)
    if filters.data_set_id is not None:
        query = query.where(Agent.dataset_id == filters.data_set_id)
    return query


async def count_chats(session: AsyncSession, user: User, filters: ConversationFilters) -> int:
    chats = _chats(user, filters).subquery()
    counted = await session.scalar(select(func.count()).select_from(chats))
    return int(counted or 0)


async def list_chats(
    session: AsyncSession, user: User, filters: ConversationFilters, *, offset: int, limit: int
) -> Sequence[tuple[Conversation, Agent]]:
    """A page of them, newest first."""
    query = _chats(user, filters).order_by(Conversation.created_at.desc(), Conversation.id.desc())
    rows = await session.execute(query.offset(offset).limit(limit))
    return [(conversation, agent) for conversation, agent in rows]
