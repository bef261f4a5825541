"""Which environment variable may hold an agent's own model provider key.

An agent names the variable (``model.api_key_env``), never the key: no key material is stored
or returned by the API. The name must start with AGENTRUN_MODEL_KEY_ENV_PREFIX and may not be
one of the service's own settings, so that an admin cannot have the worker send, say,
AGENTRUN_DATABASE_URL to a base URL of his choice as a "key".
"""

import re

from app.core.config import Settings

_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _service_variables() -> frozenset[str]:
    names = set()
    for field_name, field in Settings.model_fields.items():
        names.add(f"AGENTRUN_{field_name.upper()}")
        choices = getattr(field.validation_alias, "choices", ())
        names.update(str(choice) for choice in choices)
    return frozenset(names)


_SERVICE_VARIABLES = _service_variables()


def key_env_problem(name: str, settings: Settings) -> str | None:
    """Why ``name`` may not be used as an agent's key variable, or None if it may."""
    prefix = settings.model_key_env_prefix
    if not _ENV_NAME.fullmatch(name):
        return "An environment variable name: upper-case letters, digits and underscores."
    if not name.startswith(prefix) or name == prefix or name in _SERVICE_VARIABLES:
        return f"Must start with {prefix} (AGENTRUN_MODEL_KEY_ENV_PREFIX) and name no setting."
    return None
