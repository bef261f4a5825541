"""Users and API tokens. A token's raw key is returned once; only its SHA-256 is stored."""

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.models import ApiToken, User
from app.auth.repository import TokenWith
from app.core.database_errors import is_unique_violation
from app.core.db import utcnow
from app.core.errors import Conflict, Invalid, NotFound

KEY_PREFIX = "ar_"
PREFIX_LENGTH = 10
USERNAME_MAX_LENGTH = 150
TOKEN_NAME_MAX_LENGTH = 100
# Writing last_used_at on every request would turn each read into a write; once a minute is
# precise enough to tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewToken:
    """A token just created, with its raw key: the only moment the key exists in the clear."""

    token: ApiToken
    key: str


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _checked_text(field: str, label: str, value: str, max_length: int) -> str:
    value = value.strip()
    if not 1 <= len(value) <= max_length or not value.isprintable():
        raise Invalid({field: f"{label} has 1 to {max_length} printable characters."})
    return value


async def create_user(session: AsyncSession, username: str, *, is_admin: bool = False) -> User:
    username = _checked_text("username", "A username", username, USERNAME_MAX_LENGTH)
    user = User(username=username, is_admin=is_admin)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise Conflict({"username": f"A user named {username!r} already exists."}) from None
    return user


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found.")
    return user


async def get_user_by_username(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user


async def list_users(session: AsyncSession) -> Sequence[User]:
    return (await session.scalars(select(User).order_by(User.id))).all()


async def issue_token(session: AsyncSession, user: User, name: str = "default") -> NewToken:
    """Create a token for ``user``; the returned key is not stored anywhere."""
    name = _checked_text("name", "A token name", name, TOKEN_NAME_MAX_LENGTH)
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id, name=name, prefix=raw_key[:PREFIX_LENGTH], key_sha256=hash_key(raw_key)
    )
    session.add(token)
    await session.flush()
    return NewToken(token=token, key=raw_key)


async def create_token(session: AsyncSession, user: User, name: str = "default") -> str:
    """Create a token for ``user`` and return its raw key (the only time it is available)."""
    return (await issue_token(session, user, name)).key


async def list_tokens(session: AsyncSession, user: User) -> Sequence[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    return (await session.scalars(query)).all()


async def revoke_token(session: AsyncSession, token: ApiToken) -> ApiToken:
    """Revoke the token from now on; revoking it again keeps the first revocation time."""
    if token.revoked_at is None:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await session.refresh(token)
    return token


async def set_user_active(
    session: AsyncSession, user: User, *, is_active: bool, by: User | None = None
) -> User:
    """Enable or disable ``user`` (``by``: the admin asking; None for an operator at the
    command line). A disabled user's tokens are refused from the next request on
    (authentication reads the flag every time); his executions already queued still run.
    An admin cannot disable himself, lest no admin be left to undo it."""
    if not is_active and by is not None and user.id == by.id:
        raise Invalid({"is_active": "You cannot disable your own user."})
    user.is_active = is_active
    await session.flush()
    return user


async def set_fair_share_weight(session: AsyncSession, user: User, weight: float) -> User:
    """His weight in the fair share of the fleet (app/executions/dispatch.py); the dispatcher
    reads it at its next release."""
    user.fair_share_weight = weight
    await session.flush()
    return user


async def get_token_of(session: AsyncSession, caller: User, token_id: int) -> ApiToken:
    """A token the caller may manage: one of his own, or any for an admin; else 404, so that
    ids of other users' tokens do not leak."""
    token = await session.get(ApiToken, token_id)
    if token is None or not (caller.is_admin or token.user_id == caller.id):
        raise NotFound("Token not found.")
    return token


async def get_user_token(session: AsyncSession, user: User, token_id: int) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("Token not found.")
    return token


async def find_token(session: AsyncSession, reference: str) -> ApiToken:
    """The token an operator means by ``reference``: its id, its prefix or its whole key."""
    reference = reference.strip()
    if reference.isdigit():
        query = select(ApiToken).where(ApiToken.id == int(reference))
    elif len(reference) > PREFIX_LENGTH:
        query = select(ApiToken).where(ApiToken.key_sha256 == hash_key(reference))
    else:
        query = select(ApiToken).where(ApiToken.prefix == reference)
    tokens = (await session.scalars(query.limit(2))).all()
    if not tokens:
        raise NotFound(f"No token {reference!r}.")
    if len(tokens) > 1:
        raise Invalid(f"Several tokens start with {reference!r}; give the token's id instead.")
    return tokens[0]


@dataclass(frozen=True)
class Authenticated:
    """The live token a request came with, and its user (read with it, not from the session)."""

    token_id: int
    user: User


async def _authenticated_from(
    session: AsyncSession, digest: str, row: Mapping[str, Any] | None
) -> Authenticated | None:
    """The token and user of a row read with ``live_token_query`` for ``digest``, its use
    recorded (once a minute, in the request's transaction); None if no live token has that
    key."""
    if row is None or not hmac.compare_digest(row["key_sha256"], digest):
        return None
    now = utcnow()
    last_used_at: datetime | None = row["last_used_at"]
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        await repository.mark_token_used(session, row["token_id"], now)
    user = User(
        id=row["id"],
        username=row["username"],
        is_admin=row["is_admin"],
        is_active=True,
        created_at=row["created_at"],
        max_executions_per_day=row["max_executions_per_day"],
        max_tokens_per_day=row["max_tokens_per_day"],
    )
    return Authenticated(token_id=row["token_id"], user=user)


async def authenticate_token(session: AsyncSession, raw_key: str) -> Authenticated | None:
    """The live token with this key and its user; None if there is none (or it is revoked, or
    its user disabled).

    Read from the database on every request, never cached, so that a revoked token, or a
    disabled user's, is refused at once by every API process.
    """
    return await authenticate_digest(session, hash_key(raw_key))


async def authenticate_digest(session: AsyncSession, digest: str) -> Authenticated | None:
    """As ``authenticate_token``, from the key's SHA-256 (what the console's session cookie
    holds, so that the cookie is not a key the API would take)."""
    return await _authenticated_from(
        session, digest, await repository.read_live_token(session, digest)
    )


async def authenticate_with(
    session: AsyncSession, raw_key: str, read: TokenWith, **values: Any
) -> tuple[Authenticated | None, dict[str, Any] | None]:
    """Authenticate and read one object in one round trip (``TokenWith``). The live token
    and its user (None if there is none), and the object's columns by name (None if there is
    no such object, or the user may not have it)."""
    digest = hash_key(raw_key)
    row = await read.read(session, digest, **values)
    found = await _authenticated_from(session, digest, row)
    if found is None or row is None:
        return found, None
    return found, read.object_of(row)
