from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
)

from app.agents.models import Agent
from app.budgets.limits import Limits
from app.core.redaction import redact_url
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
        description=(
            "Base URL of an OpenAI-compatible server (Ollama, vLLM, llama.cpp). The service's "
            "provider key is sent only to that provider's configured base URL; anywhere else "
            "the agent runs with its own key (`api_key_env`) or none. Shown with any "
            "`user:password@` and secret query values replaced by `***`."
        ),
        examples=["http://127.0.0.1:11434/v1"],
    )
    api_key_env: str | None = Field(
        default=None,
        description=(
            "The name of the worker's environment variable holding this agent's own provider "
            "key (never the key itself); it must start with AGENTRUN_MODEL_KEY_ENV_PREFIX "
            "(default `AGENTRUN_AGENT_KEY_`). Unset: the provider's service-wide key, only on "
            "its configured base URL."
        ),
        examples=["AGENTRUN_AGENT_KEY_ACME"],
    )
    temperature: float | None = Field(default=None, ge=0, le=2)


class ModelSettingsIn(ModelSettings):
    """Model settings as an admin sends them: a base URL must be an http(s) URL with a host,
    and no query or fragment."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("Not a valid URL.") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("An http:// or https:// URL with a host.")
        if parts.query or parts.fragment or value.rstrip().endswith(("?", "#")):
            # The clients append their paths to the base URL: after a query they break.
            raise ValueError("A base URL takes no query (?…) or fragment (#…).")
        return value


class ModelSettingsOut(ModelSettings):
    """Model settings as the API shows them, to members and admins alike: the base URL's
    credentials are never echoed back."""

    @field_serializer("base_url")
    def _redacted(self, value: str | None) -> str | None:
        return None if value is None else redact_url(value)


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
    model: ModelSettingsIn | None = Field(
        default=None, description="The LLM to use; unset fields fall back to the defaults."
    )
    limits: Limits | None = Field(
        default=None,
        description="Usage limits of each execution of the agent; an execution's own `limits` "
        "apply too, the stricter winning.",
    )


class AgentOut(BaseModel):
    id: int = Field(examples=[7])
    name: str = Field(examples=["Enricher"])
    dataset: int = Field(examples=[1])
    agent_type: str = Field(examples=["catalog-enrichment"])
    file_upload: bool
    model: ModelSettingsOut
    created_at: Timestamp
    deleted_at: Timestamp | None = Field(
        default=None, description="Set when the agent was deleted (its executions stay readable)."
    )
    limits: Limits | None = Field(
        default=None,
        description="Usage limits of each execution of the agent (set by an admin); null: none.",
    )


def agent_out(agent: Agent) -> AgentOut:
    return AgentOut(
        id=agent.id,
        name=agent.name,
        dataset=agent.dataset_id,
        agent_type=agent.agent_type,
        file_upload=agent.file_upload,
        model=ModelSettingsOut.model_validate(agent.model_settings),
        created_at=agent.created_at,
        deleted_at=agent.deleted_at,
        limits=None if agent.limits is None else Limits.model_validate(agent.limits),
    )
