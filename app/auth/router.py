from fastapi import APIRouter

from app.auth.dependencies import CurrentUser
from app.auth.schemas import UserOut

router = APIRouter(tags=["users"])


@router.get(
    "/users/me/",
    summary="Who am I",
    description="The user the token belongs to; handy to check that a token works.",
    responses={401: {"description": "Missing or invalid token."}},
)
async def read_current_user(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, username=user.username, is_admin=user.is_admin)
