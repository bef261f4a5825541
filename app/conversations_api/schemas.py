"""The shapes of Enthusiast's conversations API (the conversation's agent shown as its
serializer does)."""

from pydantic import BaseModel, Field

from app.agents.models import Agent
from app.agents.schemas import AgentOut, agent_out
from app.conversations.schemas import FileOut, HistoryEntryOut, MessageOut
from app.core.schemas import Timestamp


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


def conversation_agent_out(agent: Agent) -> ConversationAgentOut:
    return ConversationAgentOut(**agent_out(agent).model_dump())
