"""Delivering webhooks: each worker dispatches the outbox (``app.webhooks.dispatch``) and sends
the deliveries that are due, recording every attempt.

At least once: a delivery is claimed by pushing its next attempt ``LEASE`` ahead (``SKIP
LOCKED``: workers share the work), then sent, then its attempt recorded. A worker killed
meanwhile leaves it pending, and another sends it again once the lease is over, with the same
``webhook-id``. A non-2xx answer, a timeout (``TIMEOUT`` for the whole attempt) or a connection
error is retried after the next step of ``AGENTRUN_WEBHOOK_RETRY_SCHEDULE``; after the last,
the delivery is ``failed``. An endpoint failing for ``DISABLE_AFTER`` straight is disabled.

Sends run as tasks of their own, at most ``webhook_concurrency_per_endpoint`` per endpoint
(and ``webhook_concurrency`` in all): a slow or dead receiver holds only its own slots, and
never an execution.
"""

import asyncio
import contextlib
import json
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import utcnow
from app.core.encryption import Keyring, NoEncryptionKey
from app.webhooks.batch_dispatch import dispatch_batch_events
from app.webhooks.dispatch import BATCH, dispatch_events
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.pinned_transport import PinnedTransport
from app.webhooks.signing import signature_header
from app.webhooks.stored_secrets import push_config_of, signing_secrets
from app.webhooks.urls import RefusedUrl, check_syntax

logger = logging.getLogger(__name__)

TIMEOUT = 10.0
# Longer than an attempt may take: a claim outlives its attempt only when its worker died.
LEASE = timedelta(seconds=60)
DISABLE_AFTER = timedelta(days=5)
RESPONSE_BODY_BYTES = 1024
USER_AGENT = "agentrun-webhooks/1"


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    endpoint_id: int
    url: str
    secrets: tuple[str, ...]
    message_id: str
    payload: dict[str, Any]
    attempts: int
    # Sent besides the signature: what an A2A push notification config asks for.
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    status: int | None
    error: str | None
    body: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _extra_headers(keyring: Keyring, endpoint: WebhookEndpoint) -> dict[str, str]:
    push = push_config_of(keyring, endpoint)
    return push.headers if push else {}


async def claim_due(
    session: AsyncSession, keyring: Keyring, limit: int, busy: dict[int, int], per_endpoint: int
) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries of enabled endpoints, at most ``per_endpoint`` an
    endpoint counting the ``busy`` ones (endpoint id → attempts under way)."""
    full = [endpoint_id for endpoint_id, count in busy.items() if count >= per_endpoint]
    async with session.begin():
        rows = (
            await session.execute(
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING.value,
                    WebhookDelivery.next_attempt_at <= func.now(),
                    WebhookEndpoint.enabled.is_(True),
                    WebhookDelivery.endpoint_id.not_in(full),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            )
        ).all()
        taken: dict[int, int] = dict(busy)
        claimed = []
        for delivery, endpoint in rows:
            if taken.get(endpoint.id, 0) >= per_endpoint:
                continue
            taken[endpoint.id] = taken.get(endpoint.id, 0) + 1
            delivery.next_attempt_at = utcnow() + LEASE
            try:
                secrets = signing_secrets(keyring, endpoint)
                headers = _extra_headers(keyring, endpoint)
            except NoEncryptionKey as exc:
                # Left pending: tried again once the lease is over, when the key may be back.
                logger.error("webhook delivery %s: %s", delivery.id, exc.body["detail"])
                continue
            claimed.append(
                Claimed(
                    delivery_id=delivery.id,
                    endpoint_id=endpoint.id,
                    url=endpoint.url,
                    secrets=secrets,
                    message_id=delivery.message_id,
                    payload=delivery.payload,
                    attempts=delivery.attempts,
                    headers=headers,
                )
            )
    return claimed


async def _read_start(response: httpx.Response) -> str:
    kept = b""
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= RESPONSE_BODY_BYTES:
            break
    return kept[:RESPONSE_BODY_BYTES].decode(errors="replace")


async def send(client: httpx.AsyncClient, claimed: Claimed) -> Answer:
    """One attempt: POST the signed body, within ``TIMEOUT``, following no redirect."""
    started = time.monotonic()
    body = json.dumps(claimed.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(time.time())
    headers = {
        **claimed.headers,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": claimed.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(claimed.secrets, claimed.message_id, timestamp, body),
    }
    try:
        async with asyncio.timeout(TIMEOUT):
            # The client's transport checks the addresses again and connects to those it
            # checked (PinnedTransport): the name may resolve elsewhere since it was saved.
            check_syntax(claimed.url)
            async with client.stream("POST", claimed.url, content=body, headers=headers) as r:
                text = await _read_start(r)
                return Answer(r.status_code, None, text, time.monotonic() - started)
    except TimeoutError:
        error = f"no answer within {TIMEOUT:.0f} s"
    except RefusedUrl as exc:
        error = f"refused: {exc}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Answer(None, error, None, time.monotonic() - started)


async def record(
    session: AsyncSession, claimed: Claimed, answer: Answer, schedule: list[float]
) -> None:
    """Store the attempt; the delivery delivered, retried later, or failed; the endpoint's
    failing streak (disabled past ``DISABLE_AFTER``)."""
    now = utcnow()
    error = answer.error
    if error is None and not answer.ok:
        error = f"HTTP {answer.status}"
    async with session.begin():
        session.add(
            WebhookAttempt(
                delivery_id=claimed.delivery_id,
                attempted_at=now,
                response_status=answer.status,
                duration_ms=round(answer.seconds * 1000),
                error=None if answer.ok else error,
                response_body=answer.body,
            )
        )
        attempts = claimed.attempts + 1
        if answer.ok:
            values: dict[str, Any] = {"status": DeliveryStatus.DELIVERED.value}
            next_at = None
        elif attempts > len(schedule):
            values = {"status": DeliveryStatus.FAILED.value}
            next_at = None
        else:
            values = {}
            next_at = now + timedelta(seconds=schedule[attempts - 1])
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == claimed.delivery_id)
            .values(attempts=attempts, next_attempt_at=next_at, **values),
            execution_options={"synchronize_session": False},
        )
        endpoint = await session.get(WebhookEndpoint, claimed.endpoint_id, with_for_update=True)
        if endpoint is None:
            return
        if answer.ok:
            endpoint.failing_since = None
            return
        endpoint.failing_since = endpoint.failing_since or now
        if endpoint.enabled and now - endpoint.failing_since >= DISABLE_AFTER:
            endpoint.enabled = False
            endpoint.disabled_reason = (
                f"Disabled at {now:%Y-%m-%d %H:%M} UTC: every delivery failed since "
                f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC (last: {error})."
            )


class WebhookSender:
    """The deliveries one worker sends: claimed in turns, each sent by a task of its own."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        transport = PinnedTransport(
            allow_private_networks=settings.webhook_allow_private_networks, verify=verify
        )
        self.client = httpx.AsyncClient(
            transport=transport, follow_redirects=False, timeout=TIMEOUT, trust_env=False
        )
        self.busy: dict[int, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def dispatch(self) -> None:
        while True:
            async with self.sessionmaker() as session:
                if await dispatch_events(session, self.settings.root_path) < BATCH:
                    break
        while True:
            async with self.sessionmaker() as session:
                if await dispatch_batch_events(session, self.settings.root_path) < BATCH:
                    return

    async def send_due(self) -> int:
        room = self.settings.webhook_concurrency - len(self.tasks)
        if room <= 0:
            return 0
        async with self.sessionmaker() as session:
            claimed = await claim_due(
                session,
                self.settings.keyring,
                room,
                self.busy,
                self.settings.webhook_concurrency_per_endpoint,
            )
        for delivery in claimed:
            self.busy[delivery.endpoint_id] = self.busy.get(delivery.endpoint_id, 0) + 1
            task = asyncio.create_task(self._attempt(delivery))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(claimed)

    async def _attempt(self, claimed: Claimed) -> None:
        try:
            answer = await send(self.client, claimed)
            async with self.sessionmaker() as session:
                await record(session, claimed, answer, self.settings.webhook_retry_schedule)
        except Exception:
            # Left pending: sent again once its lease is over.
            logger.exception("webhook delivery %s: the attempt failed", claimed.delivery_id)
        finally:
            left = self.busy[claimed.endpoint_id] - 1
            if left:
                self.busy[claimed.endpoint_id] = left
            else:
                del self.busy[claimed.endpoint_id]

    async def settle(self) -> None:
        """Wait for the attempts under way (tests)."""
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()

    async def run_once(self) -> None:
        await self.dispatch()
        await self.send_due()


async def keep_delivering_webhooks(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """The worker's webhook task, from startup to shutdown."""
    sender = WebhookSender(sessionmaker, settings)
    try:
        while True:
            try:
                await sender.run_once()
            except Exception as exc:
                logger.warning("webhooks: pass failed (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(settings.webhook_poll_seconds)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(sender.aclose())
