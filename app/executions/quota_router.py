"""The daily quotas of a user: GET /api/users/me/quotas/, GET and PUT
/api/users/{id}/quotas/ (the rules: app.executions.quotas)."""

from fastapi import APIRouter

from app.auth import service
from app.auth.dependencies import AdminUser, CurrentUser
from app.auth.openapi import ADMIN_ONLY, USER_NOT_FOUND
from app.core.dependencies import SessionDep
from app.core.ids import RowId
from app.executions import quotas

router = APIRouter(tags=["users"])

QUOTAS_DESCRIPTION = (
    "Daily quotas count per UTC day over the user's executions: `max_executions_per_day` the "
    "executions started, `max_tokens_per_day` the input plus output tokens they used (a "
    "running one counts once it ends). A start or retry past one is refused with 429, naming "
    "the quota and when it resets (`Retry-After` too). Null: no quota."
)


@router.get(
    "/users/me/quotas/",
    summary="My daily quotas",
    description=f"Your quotas and what you used today. {QUOTAS_DESCRIPTION}",
)
async def read_own_quotas(session: SessionDep, user: CurrentUser) -> quotas.QuotasOut:
    return await quotas.quotas_of(session, user)


@router.get(
    "/users/{user_id}/quotas/",
    summary="A user's daily quotas",
    description=f"{QUOTAS_DESCRIPTION} Admins only.",
    responses={**ADMIN_ONLY, **USER_NOT_FOUND},
)
async def read_quotas(user_id: RowId, session: SessionDep, _: AdminUser) -> quotas.QuotasOut:
    return await quotas.quotas_of(session, await service.get_user(session, user_id))


@router.put(
    "/users/{user_id}/quotas/",
    summary="Set a user's daily quotas",
    description=f"{QUOTAS_DESCRIPTION} A field left out is null. Admins only.",
    responses={
        **ADMIN_ONLY,
        400: {
            "description": "Invalid body (fields named): a quota that is not a positive "
            "integer, or an unknown field.",
            "content": {
                "application/json": {
                    "example": {"max_executions_per_day": "Input should be greater than 0"}
                }
            },
        },
        **USER_NOT_FOUND,
    },
)
async def set_quotas(
    user_id: RowId, body: quotas.QuotasIn, session: SessionDep, _: AdminUser
) -> quotas.QuotasOut:
    return await quotas.set_quotas(session, await service.get_user(session, user_id), body)
