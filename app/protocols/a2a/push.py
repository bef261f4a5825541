"""An A2A task's push notification configs, as webhook endpoints of its execution (app/webhooks):
their deliveries are the webhooks' own, made from the event log's outbox, signed (Standard
Webhooks), retried, recorded, and never sent to a private address. A config belongs to its
task and to the user who set it; another user's configs are not his to see.

The body of each delivery is an A2A ``StreamResponse`` holding the task as it stands in that
status (app.webhooks.dispatch). A config's ``token`` is sent as ``X-A2A-Notification-Token``,
its ``authentication`` as ``Authorization: <scheme> <credentials>``; a token that is itself a
Standard Webhooks secret (``whsec_…``) signs the deliveries instead, and is then not sent.
"""

import base64
import binascii

from a2a.server.tasks.push_notification_config_store import normalize_push_notification_config
from a2a.types.a2a_pb2 import TaskPushNotificationConfig
from google.protobuf import json_format  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.core.config import Settings
from app.core.encryption import Keyring
from app.core.errors import Invalid
from app.executions.repository import ExecutionRow
from app.webhooks import repository
from app.webhooks.models import WebhookEndpoint, WebhookEvent
from app.webhooks.signing import PREFIX, new_secret
from app.webhooks.stored_secrets import PushConfig, push_config_of, seal_push_config, seal_secret
from app.webhooks.urls import RefusedUrl, check_url

TOKEN_HEADER = "X-A2A-Notification-Token"
MAX_CONFIGS_PER_TASK = 10
_MAX_LENGTHS = {"id": 200, "token": 1000, "scheme": 100, "credentials": 4000}


def _signing_secret(token: str) -> str | None:
    """The token as a Standard Webhooks secret, if it is one (32 bytes or so, base64)."""
    if not token.startswith(PREFIX):
        return None
    try:
        key = base64.b64decode(token.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        return None
    return token if 24 <= len(key) <= 64 else None


def _check_fields(config: TaskPushNotificationConfig) -> None:
    values = {
        "id": config.id,
        "token": config.token,
        "scheme": config.authentication.scheme,
        "credentials": config.authentication.credentials,
    }
    for name, value in values.items():
        if len(value) > _MAX_LENGTHS[name]:
            raise Invalid({name: [f"At most {_MAX_LENGTHS[name]} characters."]})
        # Sent in a header: no line breaks or other control characters.
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise Invalid({name: ["No control characters."]})


def _headers(config: TaskPushNotificationConfig, signs: bool) -> dict[str, str]:
    headers = {}
    if config.token and not signs:
        headers[TOKEN_HEADER] = config.token
    auth = config.authentication
    if auth.scheme and auth.credentials:
        headers["Authorization"] = f"{auth.scheme} {auth.credentials}"
    return headers


def config_of(keyring: Keyring, endpoint: WebhookEndpoint) -> TaskPushNotificationConfig:
    """The config as its user set it (stored encrypted: it holds his credentials)."""
    stored = push_config_of(keyring, endpoint)
    config = TaskPushNotificationConfig()
    json_format.ParseDict(stored.config if stored else {}, config)
    return config


async def list_configs(
    session: AsyncSession, keyring: Keyring, user: User, execution: ExecutionRow
) -> list[TaskPushNotificationConfig]:
    endpoints = await repository.execution_endpoints(session, execution["id"], user.id)
    return [config_of(keyring, endpoint) for endpoint in endpoints]


async def check(config: TaskPushNotificationConfig, settings: Settings) -> None:
    """Refuse (Invalid, naming the field) a config whose URL or fields are not acceptable.
    Resolves the URL's host: called outside any transaction."""
    _check_fields(config)
    try:
        await check_url(config.url, allow_private_networks=settings.webhook_allow_private_networks)
    except RefusedUrl as exc:
        raise Invalid({"url": [str(exc)]}) from None


async def set_config(
    session: AsyncSession,
    keyring: Keyring,
    user: User,
    execution: ExecutionRow,
    config: TaskPushNotificationConfig,
) -> TaskPushNotificationConfig:
    """Store a config that passed ``check`` (its ``id`` defaults to the task's), replacing the
    user's config of the same id on this task."""
    config = normalize_push_notification_config(str(execution["id"]), config)
    existing = await repository.execution_endpoints(session, execution["id"], user.id)
    others = [endpoint for endpoint in existing if config_of(keyring, endpoint).id != config.id]
    if len(others) >= MAX_CONFIGS_PER_TASK:
        raise Invalid({"id": [f"At most {MAX_CONFIGS_PER_TASK} configs a task."]})
    for endpoint in existing:
        if endpoint not in others:
            await session.delete(endpoint)
    secret = _signing_secret(config.token)
    stored = PushConfig(
        config=json_format.MessageToDict(config), headers=_headers(config, signs=secret is not None)
    )
    session.add(
        WebhookEndpoint(
            user_id=user.id,
            url=config.url,
            events=sorted(event.value for event in WebhookEvent),
            agent_id=execution["agent_id"],
            execution_id=execution["id"],
            enabled=True,
            secret_encrypted=seal_secret(keyring, secret or new_secret()),
            a2a_push_config_encrypted=seal_push_config(keyring, stored),
        )
    )
    await session.flush()
    return config


async def delete_config(
    session: AsyncSession, keyring: Keyring, user: User, execution: ExecutionRow, config_id: str
) -> None:
    for endpoint in await repository.execution_endpoints(session, execution["id"], user.id):
        if config_of(keyring, endpoint).id == config_id:
            await session.delete(endpoint)
    await session.flush()
