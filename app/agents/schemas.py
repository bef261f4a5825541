from pydantic import BaseModel, ConfigDict, Field


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
