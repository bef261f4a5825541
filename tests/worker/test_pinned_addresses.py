"""A webhook (or A2A push) connects to the address its check resolved, with the URL's own Host
and TLS server name: a name that resolves to a public address for the check and to 127.0.0.1
for the connection (DNS rebinding) reaches nothing of the service's network."""

import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from app.core.config import Settings
from app.webhooks.models import WebhookAttempt
from tests.factories import Factory
from tests.webhook_receiver import Receiver, webhook_receiver
from tests.worker.harness import Script, Worker, answer
from tests.worker.test_webhooks import deliver, start_task, subscribe
from workers.background import webhook_delivery
from workers.background.webhook_delivery import WebhookSender

PUBLIC = "93.184.215.14"
LOOPBACK = "127.0.0.1"
REAL_GETADDRINFO = socket.getaddrinfo


class Resolver:
    """Answers for the test's names, in turn (the last answer repeats); the system's for the
    rest. Every asyncio and anyio lookup goes through ``socket.getaddrinfo``."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def answer(self, host: str, *addresses: str) -> None:
        self.answers[host] = list(addresses)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.asked.append(name)
        queue = self.answers[name]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    resolver = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    return resolver


@pytest.fixture
async def strict_sender(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[WebhookSender]:
    """A worker's sender refusing private addresses, as in production."""
    strict = settings.model_copy(update={"webhook_allow_private_networks": False})
    sender = WebhookSender(sessionmaker, strict)
    yield sender
    await sender.aclose()


async def _attempt_errors(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str | None]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(WebhookAttempt.error)))


async def test_a_name_rebinding_to_loopback_after_its_check_reaches_nothing(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    receiver: Receiver,
    resolver: Resolver,
    strict_sender: WebhookSender,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Should the public address not refuse at once, the attempt ends sooner than 10 s.
    monkeypatch.setattr(webhook_delivery, "TIMEOUT", 3.0)
    owner, _, execution_id = await start_task(client, factory)
    await subscribe(
        client, owner, f"http://rebind.test:{receiver.port}/hook", ["execution.finished"]
    )
    await worker.run(execution_id, Script(answer({"hi": True})))
    # A public address to whoever asks first, the service's own loopback after.
    resolver.answer("rebind.test", PUBLIC, LOOPBACK)

    await deliver(strict_sender)

    assert receiver.received == []
    assert resolver.asked == ["rebind.test"]  # resolved once, for the check and the connection
    [error] = await _attempt_errors(sessionmaker)
    assert error is not None
    assert "ConnectError" in error or "no answer" in error


async def test_a_name_resolving_to_loopback_at_delivery_is_refused(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    receiver: Receiver,
    resolver: Resolver,
    strict_sender: WebhookSender,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, _, execution_id = await start_task(client, factory)
    await subscribe(
        client, owner, f"http://moved.test:{receiver.port}/hook", ["execution.finished"]
    )
    await worker.run(execution_id, Script(answer({"hi": True})))
    resolver.answer("moved.test", LOOPBACK)

    await deliver(strict_sender)

    assert receiver.received == []
    [error] = await _attempt_errors(sessionmaker)
    assert error is not None
    assert "resolves to 127.0.0.1" in error


async def test_a_delivery_goes_to_the_resolved_address_with_the_urls_host(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    receiver: Receiver,
    resolver: Resolver,
    sender: WebhookSender,
) -> None:
    # The root conftest's sender allows private networks: the receiver is on loopback.
    owner, _, execution_id = await start_task(client, factory)
    url = f"http://hooks.test:{receiver.port}/hook"
    endpoint = await subscribe(client, owner, url, ["execution.finished"])
    await worker.run(execution_id, Script(answer({"hi": True})))
    resolver.answer("hooks.test", LOOPBACK)

    await deliver(sender)

    [received] = await receiver.until(1)
    assert received.headers["host"] == f"hooks.test:{receiver.port}"
    Webhook(endpoint["secret"]).verify(received.body, received.headers)


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / f"{name}.pem", directory / f"{name}.key"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@pytest.mark.parametrize(("certified", "delivered"), [("hooks.test", True), ("other.test", False)])
async def test_tls_names_the_hostname_and_verifies_its_certificate_at_the_pinned_address(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    resolver: Resolver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    certified: str,
    delivered: bool,
) -> None:
    certfile, keyfile = _certificate(tmp_path, certified)
    # Trusting that certificate only.
    trusted = ssl.create_default_context(cafile=str(certfile))
    sender = WebhookSender(sessionmaker, settings, verify=trusted)
    try:
        async with webhook_receiver(certificate=(certfile, keyfile)) as receiver:
            owner, _, execution_id = await start_task(client, factory)
            url = f"https://hooks.test:{receiver.port}/hook"
            await subscribe(client, owner, url, ["execution.finished"])
            await worker.run(execution_id, Script(answer({"hi": True})))
            resolver.answer("hooks.test", LOOPBACK)

            await deliver(sender)
            received = list(receiver.received)
    finally:
        await sender.aclose()

    [error] = await _attempt_errors(sessionmaker)
    if delivered:
        # Connected to 127.0.0.1, the certificate checked for hooks.test, the name sent.
        assert error is None
        assert [r.headers["host"] for r in received] == [f"hooks.test:{receiver.port}"]
    else:
        assert received == []
        assert error is not None
        assert "CERTIFICATE_VERIFY_FAILED" in error
        assert "hooks.test" in error
