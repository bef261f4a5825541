"""Secrets at rest: a dump of the database holds no webhook secret nor A2A credential, a key
rotates without a signature failing, the migration encrypts what was stored in the clear, and a
process without the key refuses to start (docs/security.md)."""

import asyncio
import base64
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from a2a.types.a2a_pb2 import (
    AuthenticationInfo,
    GetTaskPushNotificationConfigRequest,
    TaskPushNotificationConfig,
)
from alembic import command
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from app.core.config import Settings
from app.core.encryption import key_id, new_key, parse_key, sealed_key_id
from app.main import create_app
from app.webhooks.models import WebhookEndpoint
from app.webhooks.signing import new_secret
from app.webhooks.stored_secrets import KeysMissing, push_config_of, signing_secrets
from tests.conftest import SERVER_URL, alembic_config
from tests.factories import Factory
from tests.protocols.test_a2a import Connect, connect, sent, start_message
from tests.protocols.test_a2a import structured_task_agent as agent_of
from tests.webhook_receiver import Receiver
from tests.worker.conftest import worker, worker_ctx
from tests.worker.harness import Script, Worker, answer
from tests.worker.test_webhooks import deliver, start_task, subscribe
from workers.background.webhook_delivery import WebhookSender
from workers.process.startup import startup

__all__ = ["connect", "worker", "worker_ctx"]

ROOT = Path(__file__).resolve().parents[2]


def _libpq_url(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_dump(database_url: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "pg_dump",
        "--data-only",
        _libpq_url(database_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


def _forms(secret: str) -> list[str]:
    """The secret as given, and the key bytes it stands for in base64 and hex."""
    forms = [secret]
    if secret.startswith("whsec_"):
        key = base64.b64decode(secret.removeprefix("whsec_"))
        forms += [secret.removeprefix("whsec_"), key.hex()]
    return forms


async def test_a_dump_of_the_database_holds_no_webhook_secret_nor_push_credential(
    client: AsyncClient,
    factory: Factory,
    connect: Connect,
    receiver: Receiver,
    database_url: str,
) -> None:
    owner, agent = await agent_of(factory)
    created = await subscribe(client, owner, receiver.url)
    rotated = await client.post(
        f"/api/webhooks/{created['id']}/rotate-secret/", headers=owner.headers
    )
    signing_token = new_secret()
    credentials = f"cred-{uuid.uuid4().hex}"
    opaque_token = f"tok-{uuid.uuid4().hex}"
    async with connect(owner, agent) as a2a:
        task = await sent(a2a, start_message(return_immediately=True))
        await a2a.create_task_push_notification_config(
            TaskPushNotificationConfig(
                task_id=task.id,
                id="opaque",
                url=receiver.url,
                token=opaque_token,
                authentication=AuthenticationInfo(scheme="Bearer", credentials=credentials),
            )
        )
        await a2a.create_task_push_notification_config(
            TaskPushNotificationConfig(
                task_id=task.id, id="signing", url=receiver.url, token=signing_token
            )
        )
        # The config reads back as its user set it (the contract: A2A answers it whole).
        read_back = await a2a.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task.id, id="opaque")
        )

    dump = await _pg_dump(database_url)

    assert read_back.token == opaque_token
    assert read_back.authentication.credentials == credentials
    secrets = [created["secret"], rotated.json()["secret"], signing_token]
    assert receiver.url in dump  # the dump has the endpoints' rows...
    for secret in [*secrets, credentials, opaque_token]:
        for form in _forms(secret):
            assert form not in dump  # ...and none of their secrets
    # The API shows a secret at creation and rotation only.
    listed = await client.get("/api/webhooks/", headers=owner.headers)
    read = await client.get(f"/api/webhooks/{created['id']}/", headers=owner.headers)
    for refusedtext in (listed.text, read.text):
        assert not any(secret in refusedtext for secret in secrets)


async def _agentrun(settings: Settings, keys: list[str], *args: str) -> tuple[int, str]:
    environment = {
        **os.environ,
        "AGENTRUN_DATABASE_URL": settings.database_url,
        "AGENTRUN_ENCRYPTION_KEYS": ",".join(keys),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_after_a_key_rotation_deliveries_still_verify_with_the_endpoints_secret(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    old_key = settings.encryption_keys[0].get_secret_value()
    owner, _, execution_id = await start_task(client, factory)
    endpoint = await subscribe(client, owner, receiver.url, ["execution.finished"])
    new = new_key()

    code, output = await _agentrun(settings, [new, old_key], "keys", "rotate")

    assert code == 0, output
    assert f"1 webhook endpoint(s) re-encrypted with key {key_id(parse_key(new))}" in output
    async with sessionmaker() as session:
        stored = await session.scalar(select(WebhookEndpoint.secret_encrypted))
    assert stored is not None
    assert sealed_key_id(stored) == key_id(parse_key(new))
    # The old key dropped: a worker with the new one alone signs with the same secret.
    only_new = settings.model_copy(update={"encryption_keys": [SecretStr(new)]})
    sender = WebhookSender(sessionmaker, only_new)
    try:
        await worker.run(execution_id, Script(answer({"hi": True})))
        await deliver(sender)
    finally:
        await sender.aclose()
    [received] = await receiver.until(1)
    body = Webhook(endpoint["secret"]).verify(received.body, received.headers)
    assert body["type"] == "execution.finished"
    # A second rotation finds nothing left under another key.
    code, output = await _agentrun(settings, [new], "keys", "rotate")
    assert code == 0, output
    assert "0 webhook endpoint(s) re-encrypted" in output


async def test_processes_refuse_to_start_without_the_key_of_stored_secrets(
    client: AsyncClient, factory: Factory, receiver: Receiver, settings: Settings
) -> None:
    owner = await factory.account()
    await subscribe(client, owner, receiver.url)
    unkeyed = settings.model_copy(update={"encryption_keys": []})
    other_key = settings.model_copy(update={"encryption_keys": [SecretStr(new_key())]})

    api = create_app(unkeyed)
    with pytest.raises(KeysMissing, match="AGENTRUN_ENCRYPTION_KEYS is not set"):
        async with api.router.lifespan_context(api):
            pass
    with pytest.raises(KeysMissing, match=r"key\(s\) [0-9a-f]{8}, not in AGENTRUN_ENCRYPTION_KEYS"):
        await startup({"settings": other_key})


async def test_without_a_key_a_new_endpoint_is_refused_with_503_naming_the_setting(
    settings: Settings, factory: Factory, receiver: Receiver
) -> None:
    # No endpoint stored yet: the API starts without a key, and says what is missing.
    app = create_app(settings.model_copy(update={"encryption_keys": []}))
    owner = await factory.account()
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as unkeyed,
    ):
        refused = await unkeyed.post(
            "/api/webhooks/",
            json={"url": receiver.url, "events": ["execution.finished"]},
            headers=owner.headers,
        )
        listed = await unkeyed.get("/api/webhooks/", headers=owner.headers)

    assert refused.status_code == 503
    assert "AGENTRUN_ENCRYPTION_KEYS" in refused.json()["detail"]
    assert listed.json()["count"] == 0  # nothing half written


async def test_the_migration_encrypts_the_stored_secrets_and_refuses_without_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"agentrun_secrets_{uuid.uuid4().hex[:10]}"
    server = await asyncpg.connect(SERVER_URL)
    await server.execute(f'CREATE DATABASE "{name}"')
    base = SERVER_URL.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    config = alembic_config(url)
    secret, previous = new_secret(), new_secret()
    try:
        await asyncio.to_thread(command.upgrade, config, "0024")
        database = await asyncpg.connect(f"{base}/{name}")
        try:
            await database.execute(
                "INSERT INTO users (username, is_admin, created_at) VALUES ('ada', false, now())"
            )
            await database.execute(
                "INSERT INTO webhook_endpoints (user_id, url, events, enabled, secret, "
                "previous_secret, previous_secret_expires_at, created_at, a2a_push_config) "
                "VALUES (1, 'https://hooks.example/a', '{execution.finished}', true, $1, $2, "
                "now() + interval '1 hour', now(), $3::jsonb)",
                secret,
                previous,
                '{"config": {"token": "tok-clear"}, "headers": {"Authorization": "Bearer c"}}',
            )
            monkeypatch.delenv("AGENTRUN_ENCRYPTION_KEYS", raising=False)
            with pytest.raises(RuntimeError, match="AGENTRUN_ENCRYPTION_KEYS is not set"):
                await asyncio.to_thread(command.upgrade, config, "head")
            # Refused as a whole: still at 0024, the secret still there to encrypt.
            assert await database.fetchval("SELECT version_num FROM alembic_version") == "0024"
            assert await database.fetchval("SELECT secret FROM webhook_endpoints") == secret

            key = new_key()
            monkeypatch.setenv("AGENTRUN_ENCRYPTION_KEYS", key)
            await asyncio.to_thread(command.upgrade, config, "head")
            row = await database.fetchrow("SELECT * FROM webhook_endpoints")
        finally:
            await database.close()
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()

    assert row is not None
    assert "secret" not in row
    assert "a2a_push_config" not in row
    stored = WebhookEndpoint(
        secret_encrypted=row["secret_encrypted"],
        previous_secret_encrypted=row["previous_secret_encrypted"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        a2a_push_config_encrypted=row["a2a_push_config_encrypted"],
    )
    keyring = Settings(encryption_keys=[key], _env_file=None).keyring  # type: ignore[call-arg]

    assert signing_secrets(keyring, stored) == (secret, previous)
    push = push_config_of(keyring, stored)
    assert push is not None
    assert push.config == {"token": "tok-clear"}
    assert push.headers == {"Authorization": "Bearer c"}
    assert "tok-clear" not in row["a2a_push_config_encrypted"]
