"""Building the pydantic-ai model an agent asks for, from its ``model_settings``.

``openai:<name>`` (or a bare name with a ``base_url``) goes through the Chat Completions API, so
that any OpenAI-compatible server (Ollama, vLLM, llama.cpp) works through a base URL;
``anthropic:<name>`` through Anthropic; ``demo`` is the offline demo model (``workers.demo_model``,
no LLM); ``test`` is pydantic-ai's TestModel; anything else is
left to pydantic-ai's own inference (keys from the environment, sent to each provider's own
address). Which key an OpenAI or Anthropic request carries depends on where it goes
(``workers.run.model_credentials``). Models are cached per worker and share one HTTP connection
pool, which the worker closes when it stops.

The OpenAI and Anthropic clients retry what is worth retrying (429, 408, 409, 5xx, timeouts,
lost connections) with exponential backoff, honouring the provider's Retry-After, up to
AGENTRUN_MODEL_MAX_RETRIES times; one request may take AGENTRUN_MODEL_TIMEOUT_SECONDS. What
still fails ends the run as ``runtime_error`` with the provider's status (``workers.run.failures``).
"""

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from pydantic_ai.models import Model, create_async_httpx2_client, infer_model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings as RequestSettings

from app.agents.schemas import ModelSettings
from app.core.config import Settings
from workers.demo_model import MODEL_NAME, demo_model
from workers.run.model_credentials import (
    ANTHROPIC_DEFAULT_URL,
    NO_KEY,
    OPENAI_DEFAULT_URL,
    CredentialError,
    endpoint,
)

OPENAI_PREFIXES = ("openai:", "openai-chat:")


def request_settings(model_settings: ModelSettings) -> RequestSettings | None:
    """Per-request settings of the agent (temperature), or None for the provider's defaults."""
    if model_settings.temperature is None:
        return None
    return RequestSettings(temperature=model_settings.temperature)


class ModelFactory:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: dict[tuple[str, str | None, str | None], Model] = {}
        self._http_client = create_async_httpx2_client()

    def model_for(self, model_settings: ModelSettings) -> Model:
        name = model_settings.name or self.settings.default_model
        key = (name, model_settings.base_url, model_settings.api_key_env)
        if key not in self._models:
            self._models[key] = self._build(name, model_settings)
        return self._models[key]

    def _build(self, name: str, model_settings: ModelSettings) -> Model:
        if name == MODEL_NAME:
            return demo_model()
        if name == "test":
            # No tool calls: a TestModel calling every tool with made-up arguments would call
            # stop_execution (and write made-up product data).
            return TestModel(call_tools=[])
        openai_name = next((name[len(p) :] for p in OPENAI_PREFIXES if name.startswith(p)), None)
        if openai_name is None and model_settings.base_url is not None and ":" not in name:
            openai_name = name
        if openai_name is not None:
            return OpenAIChatModel(openai_name, provider=self._openai(model_settings))
        if name.startswith("anthropic:"):
            return AnthropicModel(
                name.removeprefix("anthropic:"), provider=self._anthropic(model_settings)
            )
        if model_settings.api_key_env is not None:
            raise CredentialError(
                f"An agent's own key (api_key_env) works with openai: and anthropic: models, "
                f"not {name!r}."
            )
        return infer_model(name)

    def _openai(self, model_settings: ModelSettings) -> OpenAIProvider:
        settings = self.settings
        to = endpoint(
            settings,
            agent_url=model_settings.base_url,
            key_env=model_settings.api_key_env,
            configured_url=settings.openai_base_url,
            default_url=OPENAI_DEFAULT_URL,
            service_key=settings.openai_api_key,
        )
        if to.api_key is None and model_settings.base_url is None and not settings.openai_base_url:
            # Neither a key nor a server: pydantic-ai raises its error naming the setting.
            return OpenAIProvider(http_client=self._http_client)
        client = AsyncOpenAI(
            # A local OpenAI-compatible server may want no key, but the client wants one.
            api_key=to.api_key or NO_KEY,
            base_url=to.base_url,
            http_client=self._http_client,
            max_retries=settings.model_max_retries,
            timeout=settings.model_timeout_seconds,
        )
        return OpenAIProvider(openai_client=client)

    def _anthropic(self, model_settings: ModelSettings) -> AnthropicProvider:
        settings = self.settings
        to = endpoint(
            settings,
            agent_url=model_settings.base_url,
            key_env=model_settings.api_key_env,
            configured_url=settings.anthropic_base_url,
            default_url=ANTHROPIC_DEFAULT_URL,
            service_key=settings.anthropic_api_key,
        )
        if to.api_key is None and model_settings.base_url is None:
            # No key for Anthropic itself: pydantic-ai raises its error naming the setting.
            return AnthropicProvider(base_url=to.base_url, http_client=self._http_client)
        client = AsyncAnthropic(
            # Never None: the SDK would look for credentials in the environment itself.
            api_key=to.api_key or NO_KEY,
            base_url=to.base_url,
            http_client=self._http_client,
            max_retries=settings.model_max_retries,
            timeout=settings.model_timeout_seconds,
        )
        return AnthropicProvider(anthropic_client=client)

    async def aclose(self) -> None:
        self._models.clear()
        await self._http_client.aclose()
