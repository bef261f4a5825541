"""Reading conversations, their messages and files, for the users allowed to."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.conversations.models import Conversation, ConversationFile, Message
from app.core.errors import NotFound


def can_read(user: User, conversation: Conversation) -> bool:
    return user.is_admin or conversation.user_id == user.id


async def get_visible_conversation(
    session: AsyncSession, user: User, conversation_id: int
) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or not can_read(user, conversation):
        raise NotFound("Conversation not found.")
    return conversation


async def list_messages(session: AsyncSession, conversation_id: int) -> Sequence[Message]:
    query = select(Message).where(Message.conversation_id == conversation_id)
    return (await session.scalars(query.order_by(Message.id))).all()


async def list_files(session: AsyncSession, conversation_id: int) -> list[ConversationFile]:
    return (await files_by_conversation(session, [conversation_id]))[conversation_id]


async def get_visible_file(session: AsyncSession, user: User, storage_key: str) -> ConversationFile:
    """The stored file at ``storage_key``, if ``user`` may read its conversation."""
    query = (
        select(ConversationFile, Conversation)
        .join(Conversation, Conversation.id == ConversationFile.conversation_id)
        .where(ConversationFile.storage_key == storage_key)
    )
    row = (await session.execute(query)).first()
    if row is None or not can_read(user, row.Conversation):
        raise NotFound("File not found.")
    file: ConversationFile = row.ConversationFile
    return file


async def files_by_conversation(
    session: AsyncSession, conversation_ids: Sequence[int]
) -> dict[int, list[ConversationFile]]:
    """Visible files of several conversations in one query, for a page of executions."""
    found: dict[int, list[ConversationFile]] = {cid: [] for cid in conversation_ids}
    if not conversation_ids:
        return found
    query = select(ConversationFile).where(
        ConversationFile.conversation_id.in_(conversation_ids),
        ConversationFile.hidden.is_(False),
    )
    for file in await session.scalars(query.order_by(ConversationFile.id)):
        found[file.conversation_id].append(file)
    return found
