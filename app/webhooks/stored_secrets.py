"""The secrets of webhook endpoints as stored: encrypted (app/core/encryption.py), opened only
where they are used (signing a delivery, sending a push config's credentials, answering the
secret at creation or rotation, showing an A2A client the config it set).

Every encrypted column is listed in ``ENCRYPTED_COLUMNS``: ``reseal_all`` (``agentrun keys
rotate``) and ``check_keys`` (at startup) go through them all.
"""

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Subquery, func, select, union, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from app.core.database_errors import DATABASE_ERRORS
from app.core.db import utcnow
from app.core.encryption import SETTING, Keyring, sealed_key_id
from app.webhooks.models import WebhookEndpoint

logger = logging.getLogger(__name__)

# Bound to each value as associated data: a value opens only in the column it was sealed for.
# Both signing secrets share one purpose, so a rotation moves the current one as it is.
SECRET = "webhook_endpoints.secret"
PUSH_CONFIG = "webhook_endpoints.a2a_push_config"

ENCRYPTED_COLUMNS: tuple[tuple[InstrumentedAttribute[Any], str], ...] = (
    (WebhookEndpoint.secret_encrypted, SECRET),
    (WebhookEndpoint.previous_secret_encrypted, SECRET),
    (WebhookEndpoint.a2a_push_config_encrypted, PUSH_CONFIG),
)


def seal_secret(keyring: Keyring, secret: str) -> str:
    return keyring.seal(secret, SECRET)


def secret_of(keyring: Keyring, endpoint: WebhookEndpoint) -> str:
    return keyring.open(endpoint.secret_encrypted, SECRET)


def signing_secrets(keyring: Keyring, endpoint: WebhookEndpoint) -> tuple[str, ...]:
    """The secrets a delivery is signed with: the current one, and the one it replaced while
    that is still valid."""
    current = secret_of(keyring, endpoint)
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > utcnow():
        return (current, keyring.open(endpoint.previous_secret_encrypted, SECRET))
    return (current,)


@dataclass(frozen=True)
class PushConfig:
    """An A2A push notification config as its user set it, and the headers its deliveries
    carry."""

    config: dict[str, Any]
    headers: dict[str, str]


def seal_push_config(keyring: Keyring, push: PushConfig) -> str:
    text = json.dumps({"config": push.config, "headers": push.headers}, separators=(",", ":"))
    return keyring.seal(text, PUSH_CONFIG)


def push_config_of(keyring: Keyring, endpoint: WebhookEndpoint) -> PushConfig | None:
    if endpoint.a2a_push_config_encrypted is None:
        return None
    stored = json.loads(keyring.open(endpoint.a2a_push_config_encrypted, PUSH_CONFIG))
    headers = {str(name): str(value) for name, value in stored.get("headers", {}).items()}
    return PushConfig(config=stored.get("config", {}), headers=headers)


async def reseal_all(session: AsyncSession, keyring: Keyring) -> int:
    """Seal every stored secret again with the first key (``agentrun keys rotate``), in the
    session's transaction, rows locked; how many endpoints were sealed with another key."""
    first = keyring.sealing_id
    endpoints = await session.scalars(
        select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()
    )
    changed = 0
    for endpoint in endpoints:
        values: dict[str, str] = {}
        for column, purpose in ENCRYPTED_COLUMNS:
            sealed = getattr(endpoint, column.key)
            if sealed is not None and sealed_key_id(sealed) != first:
                values[column.key] = keyring.seal(keyring.open(sealed, purpose), purpose)
        if values:
            changed += 1
            await session.execute(
                update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id).values(values),
                execution_options={"synchronize_session": False},
            )
    return changed


class KeysMissing(RuntimeError):
    """Stored secrets the configured keys cannot open: the process refuses to start."""


def _key_ids_in_use() -> Subquery:
    return union(
        *(
            select(func.split_part(column, ".", 2).label("key_id")).where(column.is_not(None))
            for column, _ in ENCRYPTED_COLUMNS
        )
    ).subquery()


async def check_keys(session: AsyncSession, keyring: Keyring) -> None:
    """Refuse (KeysMissing, naming the setting) when a stored secret was sealed with a key the
    service does not have: none set, or one dropped before ``agentrun keys rotate`` ran."""
    in_use = _key_ids_in_use()
    used = set((await session.scalars(select(in_use.c.key_id))).all())
    missing = sorted(used - set(keyring.ids))
    if not missing:
        return
    if not keyring.ids:
        raise KeysMissing(
            f"{SETTING} is not set, and the database holds encrypted webhook secrets: set it "
            "to the keys they were encrypted with (docs/security.md)."
        )
    raise KeysMissing(
        f"The database holds webhook secrets encrypted with key(s) {', '.join(missing)}, not in "
        f"{SETTING} (ids {', '.join(keyring.ids)}): add the key(s) back, then run `agentrun "
        "keys rotate` before dropping them (docs/security.md)."
    )


async def refuse_to_start_without_keys(
    sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring
) -> None:
    """At the start of an API or worker process: ``check_keys``, logged and raised so that the
    process stops with the reason. A database that cannot be read (down, or not migrated yet)
    is not a reason to stop: the API starts and /readyz answers 503 meanwhile, and every use
    of a secret without its key answers 503 naming the setting."""
    try:
        async with sessionmaker() as session:
            await check_keys(session, keyring)
    except KeysMissing as exc:
        logger.critical("%s", exc)
        raise
    except DATABASE_ERRORS as exc:
        logger.warning("stored secrets' keys not checked: %s: %s", type(exc).__name__, exc)
