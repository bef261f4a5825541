"""PATCH /api/users/{id}/ (disable or enable a user) and DELETE
/api/datasets/{id}/members/{user_id}/ (remove a member): the change of access (app.auth,
app.catalog) and, when access is taken away, his work stopped
(app.executions.revocation.revoke_user_work) in the same transaction. Documented under the
users' and the datasets' tags, beside their other routes."""

from fastapi import APIRouter, Response, status

from app.auth import service as users
from app.auth.dependencies import AdminUser
from app.auth.openapi import ADMIN_ONLY, USER_NOT_FOUND
from app.auth.schemas import UserOut, UserUpdate, user_out
from app.catalog import service as catalog
from app.core.dependencies import QueueDep, SessionDep, SettingsDep
from app.core.query import CancelRunning
from app.executions.revocation import revoke_user_work

router = APIRouter()


@router.patch(
    "/users/{user_id}/",
    tags=["users"],
    summary="Disable or enable a user",
    description=(
        '`{"is_active": false}` disables the user: every request with one of his tokens is '
        "refused (401, as an invalid token) from now on, in every API process, and his "
        "executions not started yet end `failed` with code `cancelled`. His running "
        "executions finish, unless `?cancel_running=true`: then each is cancelled as a single "
        "cancel does. `true` enables him again, with the same tokens (those not revoked); "
        "what was cancelled stays cancelled. An admin cannot disable himself. Admins only."
    ),
    responses={
        **ADMIN_ONLY,
        400: {
            "description": "Invalid body (fields named), or an admin disabling himself.",
            "content": {
                "application/json": {"example": {"is_active": "You cannot disable your own user."}}
            },
        },
        **USER_NOT_FOUND,
    },
)
async def update_user(
    user_id: int,
    body: UserUpdate,
    session: SessionDep,
    admin: AdminUser,
    queue: QueueDep,
    settings: SettingsDep,
    cancel_running: CancelRunning = False,
) -> UserOut:
    user = await users.get_user(session, user_id)
    await users.set_user_active(session, user, is_active=body.is_active, by=admin)
    if not body.is_active:
        await revoke_user_work(
            session,
            user,
            by=admin.username,
            cancel_running=cancel_running,
            queue=queue,
            settings=settings,
        )
    return user_out(user)


@router.delete(
    "/datasets/{dataset_id}/members/{user_id}/",
    tags=["datasets"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member from a dataset",
    description=(
        "From the next request on, the user no longer sees the dataset, its products or its "
        "agents (404), so he can start no execution on them; his executions on the dataset "
        "not started yet end `failed` with code `cancelled`. Those running finish, unless "
        "`?cancel_running=true`: then each is cancelled as a single cancel does. The "
        "executions he started stay his to read. Admins keep seeing every dataset (an "
        "admin's executions are left alone)."
    ),
    responses={
        **ADMIN_ONLY,
        404: {
            "description": "No such dataset or user, or the user is not a member.",
            "content": {
                "application/json": {
                    "example": {"detail": "The user is not a member of this dataset."}
                }
            },
        },
    },
)
async def remove_member(
    dataset_id: int,
    user_id: int,
    session: SessionDep,
    admin: AdminUser,
    queue: QueueDep,
    settings: SettingsDep,
    cancel_running: CancelRunning = False,
) -> Response:
    user = await catalog.remove_member(session, dataset_id, user_id)
    await revoke_user_work(
        session,
        user,
        by=admin.username,
        dataset_id=dataset_id,
        cancel_running=cancel_running,
        queue=queue,
        settings=settings,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
