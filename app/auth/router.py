from typing import Any

from fastapi import APIRouter, Response, status

from app.auth import service
from app.auth.dependencies import AdminUser, CurrentUser
from app.auth.openapi import ADMIN_ONLY, USER_NOT_FOUND
from app.auth.schemas import (
    FairShare,
    NewTokenOut,
    NewUserOut,
    TokenCreate,
    TokenOut,
    UserCreate,
    UserOut,
    new_token_out,
    token_out,
    user_out,
)
from app.core.dependencies import SessionDep
from app.core.ids import RowId

router = APIRouter(tags=["users"])


@router.get(
    "/users/me/",
    summary="Who am I",
    description="The user the token belongs to; handy to check that a token works.",
)
async def read_current_user(user: CurrentUser) -> UserOut:
    return user_out(user)


@router.get(
    "/users/",
    summary="List users",
    description="Every user, by id. Admins only.",
    responses=ADMIN_ONLY,
)
async def list_users(session: SessionDep, _: AdminUser) -> list[UserOut]:
    return [user_out(user) for user in await service.list_users(session)]


@router.post(
    "/users/",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user and a first token",
    description=(
        "Answers the user and a first API token. The token's `key` is shown only in this "
        "answer: only its hash is stored. Admins only."
    ),
    responses={
        **ADMIN_ONLY,
        400: {
            "description": "Invalid body (fields named), e.g. a username that is empty or "
            "longer than 150 characters.",
            "content": {
                "application/json": {
                    "example": {"username": "String should have at least 1 character"}
                }
            },
        },
        409: {
            "description": "The username is taken.",
            "content": {
                "application/json": {
                    "example": {"username": "A user named 'alice' already exists."}
                }
            },
        },
    },
)
async def create_user(body: UserCreate, session: SessionDep, _: AdminUser) -> NewUserOut:
    user = await service.create_user(session, body.username, is_admin=body.is_admin)
    token = await service.issue_token(session, user, body.token_name)
    return NewUserOut(user=user_out(user), token=new_token_out(token))


@router.get(
    "/users/{user_id}/tokens/",
    summary="List a user's tokens",
    description=(
        "Each token's id, name, key prefix and times (created, last used, revoked); never the "
        "key nor its hash. Admins only."
    ),
    responses={**ADMIN_ONLY, **USER_NOT_FOUND},
)
async def list_tokens(user_id: RowId, session: SessionDep, _: AdminUser) -> list[TokenOut]:
    user = await service.get_user(session, user_id)
    return [token_out(token) for token in await service.list_tokens(session, user)]


@router.post(
    "/users/{user_id}/tokens/",
    status_code=status.HTTP_201_CREATED,
    summary="Create a token for a user",
    description="The answer holds the raw `key`, shown only this once. Admins only.",
    responses={
        **ADMIN_ONLY,
        400: {"description": "Invalid body (fields named)."},
        **USER_NOT_FOUND,
    },
)
async def create_token(
    user_id: RowId, session: SessionDep, _: AdminUser, body: TokenCreate | None = None
) -> NewTokenOut:
    user = await service.get_user(session, user_id)
    name = body.name if body is not None else TokenCreate().name
    return new_token_out(await service.issue_token(session, user, name))


@router.post(
    "/users/{user_id}/tokens/{token_id}/revoke/",
    summary="Revoke a token",
    description=(
        "Requests with the token are refused (401) from now on. Revoking a revoked token "
        "changes nothing. Admins only."
    ),
    responses={
        **ADMIN_ONLY,
        404: {
            "description": "No such user, or no such token of this user.",
            "content": {"application/json": {"example": {"detail": "Token not found."}}},
        },
    },
)
async def revoke_token(
    user_id: RowId, token_id: RowId, session: SessionDep, _: AdminUser
) -> TokenOut:
    user = await service.get_user(session, user_id)
    token = await service.get_user_token(session, user, token_id)
    return token_out(await service.revoke_token(session, token))


TOKEN_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No such token, or another user's (for a user who is not an admin).",
        "content": {"application/json": {"example": {"detail": "Token not found."}}},
    }
}


@router.get(
    "/tokens/",
    summary="List my tokens",
    description=(
        "The tokens of the user the request's token belongs to: id, name, key prefix and times "
        "(created, last used, revoked); never the key nor its hash."
    ),
)
async def list_own_tokens(session: SessionDep, user: CurrentUser) -> list[TokenOut]:
    return [token_out(token) for token in await service.list_tokens(session, user)]


@router.delete(
    "/tokens/{token_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a token",
    description=(
        "Revokes one of your tokens (admins: anyone's): requests with it are refused (401) "
        "from now on, in every API process. Revoking a revoked token changes nothing; the "
        "token used for this request may revoke itself."
    ),
    responses={**TOKEN_NOT_FOUND},
)
async def revoke_own_token(token_id: int, session: SessionDep, user: CurrentUser) -> Response:
    await service.revoke_token(session, await service.get_token_of(session, user, token_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


FAIR_SHARE_DESCRIPTION = (
    "When executions wait for a slot (every worker's slots taken), the next free slot goes to "
    "the user with the least running and recently run work divided by his weight: a user of "
    "weight 2 gets twice the share of a user of weight 1 (the default). Weights above 0, up "
    "to 1000. With `AGENTRUN_FAIR_SHARE_KEY=dataset` every dataset weighs 1 and these "
    "weights are not used."
)


@router.get(
    "/users/{user_id}/fair-share/",
    summary="A user's weight in the fair share",
    description=f"{FAIR_SHARE_DESCRIPTION} Admins only.",
    responses={**ADMIN_ONLY, **USER_NOT_FOUND},
)
async def read_fair_share(user_id: RowId, session: SessionDep, _: AdminUser) -> FairShare:
    user = await service.get_user(session, user_id)
    return FairShare(weight=user.fair_share_weight)


@router.put(
    "/users/{user_id}/fair-share/",
    summary="Set a user's weight in the fair share",
    description=f"{FAIR_SHARE_DESCRIPTION} Admins only.",
    responses={
        **ADMIN_ONLY,
        400: {
            "description": "Invalid body (fields named): a weight not above 0 or above 1000.",
            "content": {
                "application/json": {"example": {"weight": "Input should be greater than 0"}}
            },
        },
        **USER_NOT_FOUND,
    },
)
async def set_fair_share(
    user_id: RowId, body: FairShare, session: SessionDep, _: AdminUser
) -> FairShare:
    user = await service.get_user(session, user_id)
    await service.set_fair_share_weight(session, user, body.weight)
    return FairShare(weight=user.fair_share_weight)
