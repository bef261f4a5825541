from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.schemas import Timestamp


class ModelSettings(BaseModel):
    """Which LLM an agent uses. Stored as the agent's ``model_settings`` JSON."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None,
        description=(
            "A pydantic-ai model string such as `openai:gpt-4o-mini`, "
            "`anthropic:claude-sonnet-4-5` or `test`; unset: AGENTRUN_DEFAULT_MODEL."
        ),
        examples=["openai:gpt-4o-mini"],
    )
    base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible server (Ollama, vLLM, llama.cpp).",
        examples=["http://127.0.0.1:11434/v1"],
    )
    temperature: float | None = Field(default=None, ge=0, le=2)


AgentName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: AgentName = Field(examples=["Enricher"])
    dataset_id: int = Field(description="The dataset the agent works on.", examples=[1])
    agent_type: str = Field(
        description="A registered agent type; it decides which execution types the agent offers.",
        examples=["catalog-enrichment"],
    )
    file_upload: bool = Field(
        default=False, description="Whether executions may attach files (multipart `files[]`)."
    )
    model: ModelSettings | None = Field(
        default=None, description="The LLM to use; unset fields fall back to the defaults."
    )


class AgentOut(BaseModel):
    id: int = Field(examples=[7])
    name: str = Field(examples=["Enricher"])
    dataset: int = Field(examples=[1])
    agent_type: str = Field(examples=["catalog-enrichment"])
    file_upload: bool
    model: ModelSettings
    created_at: Timestamp
    deleted_at: Timestamp | None = Field(
        default=None, description="Set when the agent was deleted (its executions stay readable)."
    )
