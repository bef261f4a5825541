from typing import Any

from pydantic import BaseModel, Field

from app.core.schemas import Timestamp


class FileOut(BaseModel):
    id: int = Field(examples=[4])
    filename: str = Field(examples=["product_data.pdf"])
    file_url: str = Field(examples=["/media/conversations/198/product_data.pdf"])
    content_type: str = Field(examples=["application/pdf"])


class MessageOut(BaseModel):
    id: int
    role: str = Field(
        description="Who or what wrote it: system, user, assistant, tool_call, tool_result, "
        "retry, …",
        examples=["assistant"],
    )
    content: str
    tool_name: str | None
    tool_call_id: str | None
    payload: dict[str, Any] | None
    created_at: Timestamp


class ConversationOut(BaseModel):
    id: int = Field(examples=[198])
    agent: int = Field(examples=[7])
    user: int
    locked: bool = Field(
        description="An execution's conversation is locked: it records the run and accepts "
        "nothing from users."
    )
    created_at: Timestamp
    messages: list[MessageOut]
    files: list[FileOut]
