from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow
from app.core.nul_free import NulFreeJSONB, NulFreeString, NulFreeText


class Conversation(Base):
    """A message thread. An execution's conversation is ``locked``: it records the run's trace
    and accepts nothing from users."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    locked: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    # system, user, assistant, tool_call, tool_result, retry, ...
    # Written by the worker from what a model said: NUL characters are replaced (nul_free).
    role: Mapped[str] = mapped_column(NulFreeString(32))
    content: Mapped[str] = mapped_column(NulFreeText, default="")
    tool_name: Mapped[str | None] = mapped_column(NulFreeString(200))
    tool_call_id: Mapped[str | None] = mapped_column(NulFreeString(200))
    payload: Mapped[dict[str, Any] | None] = mapped_column(NulFreeJSONB)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationFile(Base):
    __tablename__ = "conversation_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # path below the media root, e.g. conversations/198/product_data.pdf
    storage_key: Mapped[str] = mapped_column(String(500), unique=True)
    hidden: Mapped[bool] = mapped_column(default=False)
    # The file's text, extracted once at upload within the limits (app/conversations/
    # extraction_process.py), or why there is none. Both null: an image, or a row stored
    # before extraction at upload (extracted when first read).
    extracted_text: Mapped[str | None] = mapped_column(NulFreeText)
    extraction_error: Mapped[str | None] = mapped_column(NulFreeText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
