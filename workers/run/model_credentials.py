"""Which key a model request carries, decided by where the request goes.

A provider's service-wide key (OPENAI_API_KEY, ANTHROPIC_API_KEY) is sent only to that
provider's configured base URL (OPENAI_BASE_URL / ANTHROPIC_BASE_URL, else the provider's own
address) or a path below it: same scheme, host and port, compared as httpx (which sends the
request) parses them. An agent whose ``base_url`` points anywhere else runs with its own key,
read from the environment variable its ``api_key_env`` names, or with none (a local Ollama needs
none). The SDKs are always handed an explicit key and URL, so that neither falls back on
reading the service's key from the environment itself.
"""

import os
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from app.agents.model_keys import key_env_problem
from app.core.config import Settings

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
ANTHROPIC_DEFAULT_URL = "https://api.anthropic.com"
# The SDKs refuse to build a client without a key; this one is sent where no key is due.
NO_KEY = "api-key-not-set"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class CredentialError(Exception):
    """The agent's own key cannot be used (its variable is refused or not set)."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    # None: no key is due here.
    api_key: str | None


def _location(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    return parsed.scheme, parsed.host, port, parsed.path.rstrip("/")


def is_at_or_below(url: str, configured: str) -> bool:
    """Whether ``url`` is the ``configured`` base URL or a path below it."""
    target, allowed = _location(url), _location(configured)
    if target is None or allowed is None or not target[1] or target[:3] != allowed[:3]:
        return False
    return target[3] == allowed[3] or target[3].startswith(allowed[3] + "/")


def agent_key(key_env: str, settings: Settings) -> str:
    """The key in the variable an agent names; raises CredentialError if it cannot be used."""
    problem = key_env_problem(key_env, settings)
    if problem is not None:
        raise CredentialError(f"The agent's api_key_env {key_env!r} is refused: {problem}")
    value = os.environ.get(key_env)
    if not value:
        raise CredentialError(f"The agent's key variable {key_env} is not set on the worker.")
    return value


def endpoint(
    settings: Settings,
    *,
    agent_url: str | None,
    key_env: str | None,
    configured_url: str | None,
    default_url: str,
    service_key: SecretStr | None,
) -> Endpoint:
    """Where an agent's requests go to a provider, and the key they carry there."""
    provider_url = configured_url or default_url
    url = agent_url or provider_url
    if key_env is not None:
        return Endpoint(url, agent_key(key_env, settings))
    if service_key is not None and is_at_or_below(url, provider_url):
        return Endpoint(url, service_key.get_secret_value())
    return Endpoint(url, None)
