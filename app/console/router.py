"""The console at ``/ui/``: sign in and out, and the pages' routers, mounted by ``install``."""

import secrets
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from app.auth.service import authenticate_token, hash_key
from app.console import (
    admin_pages,
    batch_pages,
    execution_pages,
    schedule_pages,
    start_pages,
    webhook_pages,
)
from app.console.cookies import ConsoleKeys, clear_session, set_session
from app.console.web import ConsoleRoute, ConsoleUser, checked_form, redirect, render, text_field
from app.core.config import Settings
from app.core.dependencies import SessionDep

PREFIX = "/ui"
STATIC = Path(__file__).parent / "static"

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _safe_next(request: Request, target: str) -> str | None:
    """A page of the console to go back to after signing in: a path of ours, nothing else."""
    base = f"{request.scope.get('root_path', '')}{PREFIX}/"
    if target.startswith(base) and "//" not in target and "\\" not in target:
        return target
    return None


@router.get("/", name="console_home")
async def home(request: Request, _: ConsoleUser) -> Response:
    return redirect(request, "console_executions")


@router.get("/sign-in", name="console_sign_in")
async def sign_in_page(request: Request, next: str = "") -> Response:
    return render(request, "sign_in.html", {"user": None, "next": next, "error": None})


@router.post("/sign-in", name="console_sign_in_post")
async def sign_in(request: Request, session: SessionDep) -> Response:
    form = await checked_form(request)
    key = text_field(form, "token")
    target = text_field(form, "next")
    found = await authenticate_token(session, key) if key else None
    if found is None:
        context = {"user": None, "next": target, "error": "This token is unknown or revoked."}
        return render(request, "sign_in.html", context, status_code=401)
    response = redirect(request, "console_executions")
    if safe := _safe_next(request, target):
        response.headers["location"] = safe
    set_session(request, response, request.app.state.console_keys, hash_key(key))
    return response


@router.post("/sign-out", name="console_sign_out")
async def sign_out(request: Request) -> Response:
    await checked_form(request)
    response = redirect(request, "console_sign_in")
    clear_session(request, response)
    return response


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the console under /ui/ with its static files (no CDN: everything is ours)."""
    secret = (
        settings.console_secret.get_secret_value().encode()
        if settings.console_secret is not None
        else secrets.token_bytes(32)
    )
    app.state.console_keys = ConsoleKeys(secret, settings.console_session_hours * 3600)
    for pages in (
        router,
        execution_pages.router,
        batch_pages.router,
        schedule_pages.router,
        start_pages.router,
        webhook_pages.router,
        admin_pages.router,
    ):
        app.include_router(pages, prefix=PREFIX)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console_static")
