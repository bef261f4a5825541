"""The ``Authorization: Token <key>`` scheme and the user it resolves to."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from app.auth.models import User
from app.auth.service import Authenticated, authenticate_token
from app.core.config import Settings
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import Forbidden, Unauthenticated
from app.core.rate_limit import check_rate_limit

token_header = APIKeyHeader(
    name="Authorization",
    scheme_name="TokenAuth",
    description="`Token <key>`: create a key with `agentrun tokens create USERNAME`.",
    auto_error=False,
)

# Requests that write (start executions, create objects) count against the token's limit.
RATE_LIMITED_METHODS = frozenset({"POST"})


def presented_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Token <key>`` header; 401 if there is none."""
    if not authorization:
        raise Unauthenticated("Authentication credentials were not provided.")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "token" or not key.strip():
        raise Unauthenticated("Invalid token header. Expected 'Token <key>'.")
    return key.strip()


async def admitted_user(request: Request, settings: Settings, found: Authenticated | None) -> User:
    """The user of the token the request came with, once it is known to be live (else 401)
    and, for a write, within its rate limit (else 429)."""
    if found is None:
        raise Unauthenticated("Invalid token.")
    if request.method in RATE_LIMITED_METHODS:
        await check_rate_limit(
            request.app.state.queue,
            namespace=settings.queue_name,
            subject=f"token:{found.token_id}",
            per_minute=settings.rate_limit_per_minute,
        )
    return found.user


async def current_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Depends(token_header)],
) -> User:
    found = await authenticate_token(session, presented_key(authorization))
    return await admitted_user(request, settings, found)


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("This endpoint needs an admin token.")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
