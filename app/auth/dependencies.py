"""The ``Authorization: Token <key>`` scheme and the user it resolves to."""

from typing import Annotated

from fastapi import Depends
from fastapi.security import APIKeyHeader

from app.auth.models import User
from app.auth.service import authenticate
from app.core.dependencies import SessionDep
from app.core.errors import Forbidden, Unauthenticated

token_header = APIKeyHeader(
    name="Authorization",
    scheme_name="TokenAuth",
    description="`Token <key>`: create a key with `agentrun tokens create USERNAME`.",
    auto_error=False,
)


async def current_user(
    session: SessionDep, authorization: Annotated[str | None, Depends(token_header)]
) -> User:
    if not authorization:
        raise Unauthenticated("Authentication credentials were not provided.")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "token" or not key.strip():
        raise Unauthenticated("Invalid token header. Expected 'Token <key>'.")
    user = await authenticate(session, key.strip())
    if user is None:
        raise Unauthenticated("Invalid token.")
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("This endpoint needs an admin token.")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
