from typing import Any

from pydantic import BaseModel, Field

from app.conversations.models import ConversationFile
from app.core.schemas import Timestamp


class FileOut(BaseModel):
    id: int = Field(examples=[4])
    filename: str = Field(examples=["product_data.pdf"])
    file_url: str = Field(examples=["/media/conversations/198/product_data.pdf"])
    content_type: str = Field(examples=["application/pdf"])

    @classmethod
    def of(
        cls, *, id: int, filename: str, storage_key: str, content_type: str, root_path: str
    ) -> "FileOut":
        """A stored file as shown, its URL the media route's (under the app's root path)."""
        return cls(
            id=id,
            filename=filename,
            file_url=f"{root_path}/media/{storage_key}",
            content_type=content_type,
        )


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


class HistoryEntryOut(BaseModel):
    """A message of Enthusiast's ``history``: ``type`` human, ai, system or file."""

    id: int
    text: str
    type: str = Field(examples=["ai"])
    file_type: str | None = Field(default=None, examples=["pdf"])
    file_name: str | None = Field(default=None, examples=["product_data"])


def file_out(file: ConversationFile, root_path: str = "") -> FileOut:
    return FileOut.of(
        id=file.id,
        filename=file.filename,
        storage_key=file.storage_key,
        content_type=file.content_type,
        root_path=root_path,
    )
