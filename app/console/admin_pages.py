"""Admins only: users and their tokens, datasets and their members, agents (simple forms over
the services the admin API calls)."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.agents import service as agents
from app.auth import service as auth
from app.catalog import service as catalog
from app.console.web import ConsoleAdmin, ConsoleRoute, checked_form, redirect, render, text_field
from app.core.db import rollback
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import DomainError, Invalid
from app.core.ids import RowId, is_row_id
from app.definitions.registry import agent_types
from app.executions.revocation import revoke_user_work

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _messages(error: DomainError) -> list[str]:
    return [
        str(value) if key == "detail" else f"{key}: {value}" for key, value in error.body.items()
    ]


def _id(form_value: str, field: str) -> int:
    if not is_row_id(form_value):
        raise Invalid({field: "Choose one."})
    return int(form_value)


@router.get("/users/", name="console_users")
async def users_page(request: Request, session: SessionDep, admin: ConsoleAdmin) -> Response:
    return await _users(request, session, admin)


async def _users(
    request: Request,
    session: SessionDep,
    admin: ConsoleAdmin,
    *,
    created: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "user": admin,
        "users": await auth.list_users(session),
        "created": created,
        "errors": errors or [],
    }
    return render(request, "users.html", context, status_code)


@router.post("/users/", name="console_user_create")
async def create_user(request: Request, session: SessionDep, admin: ConsoleAdmin) -> Response:
    form = await checked_form(request)
    try:
        user = await auth.create_user(
            session, text_field(form, "username"), is_admin=form.get("is_admin") == "on"
        )
        new = await auth.issue_token(session, user, "console")
    except DomainError as error:
        # A refused flush (a taken name) leaves the transaction unusable: the page reads anew.
        await rollback(session)
        return await _users(request, session, admin, errors=_messages(error), status_code=400)
    created = {"username": user.username, "key": new.key}
    return await _users(request, session, admin, created=created)


@router.post("/users/{user_id}/active", name="console_user_active")
async def set_active(
    user_id: RowId, request: Request, session: SessionDep, admin: ConsoleAdmin
) -> Response:
    form = await checked_form(request)
    user = await auth.get_user(session, user_id)
    is_active = form.get("active") == "true"
    await auth.set_user_active(session, user, is_active=is_active, by=admin)
    if not is_active:
        # His executions not started are cancelled; running ones finish (the API's default).
        await revoke_user_work(session, user, by=admin.username)
    return redirect(request, "console_users")


@router.get("/users/{user_id}/tokens/", name="console_tokens")
async def tokens_page(
    user_id: RowId, request: Request, session: SessionDep, admin: ConsoleAdmin
) -> Response:
    return await _tokens(request, session, admin, user_id)


async def _tokens(
    request: Request,
    session: SessionDep,
    admin: ConsoleAdmin,
    user_id: int,
    *,
    key: str | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    owner = await auth.get_user(session, user_id)
    context = {
        "user": admin,
        "owner": owner,
        "tokens": await auth.list_tokens(session, owner),
        "key": key,
        "errors": errors or [],
    }
    return render(request, "tokens.html", context, status_code)


@router.post("/users/{user_id}/tokens/", name="console_token_create")
async def create_token(
    user_id: RowId, request: Request, session: SessionDep, admin: ConsoleAdmin
) -> Response:
    form = await checked_form(request)
    owner = await auth.get_user(session, user_id)
    try:
        new = await auth.issue_token(session, owner, text_field(form, "name") or "default")
    except DomainError as error:
        return await _tokens(
            request, session, admin, user_id, errors=_messages(error), status_code=400
        )
    return await _tokens(request, session, admin, user_id, key=new.key)


@router.post("/users/{user_id}/tokens/{token_id}/revoke", name="console_token_revoke")
async def revoke_token(
    user_id: RowId, token_id: RowId, request: Request, session: SessionDep, admin: ConsoleAdmin
) -> Response:
    await checked_form(request)
    owner = await auth.get_user(session, user_id)
    await auth.revoke_token(session, await auth.get_user_token(session, owner, token_id))
    return redirect(request, "console_tokens", user_id=user_id)


@router.get("/datasets/", name="console_datasets")
async def datasets_page(request: Request, session: SessionDep, admin: ConsoleAdmin) -> Response:
    return await _datasets(request, session, admin)


async def _datasets(
    request: Request,
    session: SessionDep,
    admin: ConsoleAdmin,
    *,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    datasets = await catalog.list_visible_datasets(session, admin)
    context = {
        "user": admin,
        "datasets": datasets,
        "members": await catalog.members_of(session, [d.id for d in datasets]),
        "users": await auth.list_users(session),
        "errors": errors or [],
    }
    return render(request, "datasets.html", context, status_code)


@router.post("/datasets/", name="console_dataset_create")
async def create_dataset(request: Request, session: SessionDep, admin: ConsoleAdmin) -> Response:
    form = await checked_form(request)
    name = text_field(form, "name")
    if not 1 <= len(name) <= 200:
        return await _datasets(
            request, session, admin, errors=["A name has 1 to 200 characters."], status_code=400
        )
    await catalog.create_dataset(session, name)
    return redirect(request, "console_datasets")


@router.post("/datasets/{dataset_id}/members", name="console_member_add")
async def add_member(
    dataset_id: RowId, request: Request, session: SessionDep, admin: ConsoleAdmin
) -> Response:
    form = await checked_form(request)
    try:
        await catalog.add_member(session, dataset_id, _id(text_field(form, "user_id"), "user"))
    except Invalid as error:
        return await _datasets(request, session, admin, errors=_messages(error), status_code=400)
    return redirect(request, "console_datasets")


@router.post("/datasets/{dataset_id}/members/{user_id}/remove", name="console_member_remove")
async def remove_member(
    dataset_id: RowId, user_id: RowId, request: Request, session: SessionDep, admin: ConsoleAdmin
) -> Response:
    await checked_form(request)
    user = await catalog.remove_member(session, dataset_id, user_id)
    await revoke_user_work(session, user, by=admin.username, dataset_id=dataset_id)
    return redirect(request, "console_datasets")


@router.get("/agents/", name="console_agents")
async def agents_page(request: Request, session: SessionDep, admin: ConsoleAdmin) -> Response:
    return await _agents(request, session, admin)


async def _agents(
    request: Request,
    session: SessionDep,
    admin: ConsoleAdmin,
    *,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "user": admin,
        "agents": await agents.list_visible_agents(session, admin),
        "datasets": await catalog.list_visible_datasets(session, admin),
        "agent_types": sorted(agent_types()),
        "errors": errors or [],
    }
    return render(request, "agents.html", context, status_code)


@router.post("/agents/", name="console_agent_create")
async def create_agent(
    request: Request, session: SessionDep, settings: SettingsDep, admin: ConsoleAdmin
) -> Response:
    form = await checked_form(request)
    name = text_field(form, "name")
    try:
        if not 1 <= len(name) <= 200:
            raise Invalid({"name": "A name has 1 to 200 characters."})
        await agents.create_agent(
            session,
            name=name,
            dataset_id=_id(text_field(form, "dataset_id"), "dataset"),
            agent_type=text_field(form, "agent_type"),
            file_upload=form.get("file_upload") == "on",
            settings=settings,
        )
    except Invalid as error:
        return await _agents(request, session, admin, errors=_messages(error), status_code=400)
    return redirect(request, "console_agents")


@router.post("/agents/{agent_id}/delete", name="console_agent_delete")
async def delete_agent(
    agent_id: RowId, request: Request, session: SessionDep, admin: ConsoleAdmin
) -> Response:
    await checked_form(request)
    await agents.delete_agent(session, agent_id)
    return redirect(request, "console_agents")
