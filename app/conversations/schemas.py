from typing import Any

from pydantic import BaseModel, Field

from app.agents.schemas import AgentOut
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


class ConversationAgentOut(AgentOut):
    corrupted: bool = Field(default=False, description="Enthusiast's; never set here.")


class ConversationSummaryOut(BaseModel):
    """A conversation in the list, as Enthusiast's ``ConversationSerializer``."""

    id: int = Field(examples=[198])
    started_at: Timestamp
    summary: str | None = Field(description="Enthusiast's; never set here.")
    agent: ConversationAgentOut


class ConversationOut(ConversationSummaryOut):
    """Enthusiast's shape (``history``, ``agent`` object, ``is_execution_conversation``), with
    the whole trace in ``messages`` and the files in ``files``."""

    history: list[HistoryEntryOut] = Field(
        description="What a person reads: the prompts, the model's text and one `file` entry "
        "per uploaded file; tool calls and retries are in `messages`."
    )
    is_execution_conversation: bool
    user: int
    locked: bool = Field(
        description="An execution's conversation is locked: it records the run and accepts "
        "nothing from users."
    )
    created_at: Timestamp
    messages: list[MessageOut] = Field(description="The whole trace of the run, in order.")
    files: list[FileOut]


class ConversationPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[ConversationSummaryOut]
