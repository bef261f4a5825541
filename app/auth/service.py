"""Users and API tokens. A token's raw key is returned once; only its SHA-256 is stored."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiToken, User
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound

KEY_PREFIX = "ar_"
# Writing last_used_at on every request would turn each read into a write; once a minute is
# precise enough to tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


async def create_user(session: AsyncSession, username: str, *, is_admin: bool = False) -> User:
    user = User(username=username, is_admin=is_admin)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict({"username": f"A user named {username!r} already exists."}) from None
    return user


async def get_user_by_username(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user


async def create_token(session: AsyncSession, user: User, name: str = "default") -> str:
    """Create a token for ``user`` and return its raw key (the only time it is available)."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user.id, name=name, prefix=raw_key[:10], key_sha256=hash_key(raw_key))
    )
    await session.commit()
    return raw_key


async def authenticate(session: AsyncSession, raw_key: str) -> User | None:
    """The user owning a live token with this key, or None."""
    digest = hash_key(raw_key)
    token = await session.scalar(
        select(ApiToken).where(ApiToken.key_sha256 == digest, ApiToken.revoked_at.is_(None))
    )
    if token is None or not hmac.compare_digest(token.key_sha256, digest):
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(
            update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
        )
        await session.commit()
    return token.user
