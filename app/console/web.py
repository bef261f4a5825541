"""What every console page shares: the signed-in user, CSRF checks, rendering, error pages.

Console routes call the same services as the REST routers with the same user, so a page shows
exactly what the API would; a domain error becomes an HTML page with the API's status code
(404 for what the user may not see), and a missing or expired session a redirect to sign in.
"""

import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from app.auth.dependencies import admitted_user
from app.auth.models import User
from app.auth.service import authenticate_digest
from app.console.cookies import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    ConsoleKeys,
    csrf_cookie_of,
    set_csrf_cookie,
)
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import DomainError, Forbidden

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Scripts and styles from the console's own static files only; no frames, no other origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def moment(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def moment_in(value: datetime | None, zone: str) -> str:
    """A time as read in a time zone (a schedule's): ``2026-03-29 03:00 CEST``."""
    if value is None:
        return "—"
    try:
        local = value.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return moment(value)
    return local.strftime("%Y-%m-%d %H:%M %Z")


TEMPLATES.env.filters["pretty_json"] = pretty_json
TEMPLATES.env.filters["duration"] = duration
TEMPLATES.env.filters["moment"] = moment
TEMPLATES.env.filters["moment_in"] = moment_in


class SignInRequired(Exception):
    """No valid session: the console answers with a redirect to its sign-in page."""


class CsrfRefused(DomainError):
    status_code = 403
    description = "The form's CSRF token is missing or wrong."

    def __init__(self) -> None:
        super().__init__("This form has expired or did not come from the console: reload it.")


def keys_of(request: Request) -> ConsoleKeys:
    keys: ConsoleKeys = request.app.state.console_keys
    return keys


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """A page, with the CSRF token its forms carry (its cookie set if the browser has none)."""
    csrf_cookie, new = csrf_cookie_of(request)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"csrf_field": CSRF_FIELD, "csrf_token": keys_of(request).csrf_token(csrf_cookie)}
        | context,
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )
    if new:
        set_csrf_cookie(request, response, csrf_cookie)
    return response


def redirect(request: Request, name: str, **path: Any) -> RedirectResponse:
    """303 See Other to a named console page (the browser then GETs it)."""
    return RedirectResponse(str(request.url_for(name, **path)), status_code=303)


def error_page(request: Request, status_code: int, message: str) -> Response:
    titles = {400: "Invalid request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return render(
        request,
        "error.html",
        {"title": titles.get(status_code, "Error"), "message": message, "user": None},
        status_code,
    )


def _message(error: DomainError) -> str:
    detail = error.body.get("detail")
    if isinstance(detail, str):
        return detail
    return "; ".join(f"{field}: {message}" for field, message in error.body.items())


class ConsoleRoute(APIRoute):
    """A console route: domain errors become pages, no session a redirect to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                sign_in = request.url_for("console_sign_in")
                target = request.url.path if request.method == "GET" else None
                url = sign_in.include_query_params(next=target) if target else sign_in
                return RedirectResponse(str(url), status_code=303)
            except DomainError as error:
                response = error_page(request, error.status_code, _message(error))
                for name, value in (error.headers or {}).items():
                    response.headers[name] = value
                return response
            except RequestValidationError:
                return error_page(request, 400, "The address or form has an invalid value.")

        return console_handler


async def console_user(request: Request, session: SessionDep, settings: SettingsDep) -> User:
    """The user of the session's token, read afresh (a revoked token ends the session); a
    form's POST counts against the token's rate limit as the API's writes do."""
    digest = keys_of(request).token_digest_of(request.cookies.get(SESSION_COOKIE))
    if digest is None:
        raise SignInRequired
    found = await authenticate_digest(session, digest)
    if found is None:
        raise SignInRequired
    return await admitted_user(request, settings, found)


async def console_admin(user: Annotated[User, Depends(console_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("This page is for admins.")
    return user


ConsoleUser = Annotated[User, Depends(console_user)]
ConsoleAdmin = Annotated[User, Depends(console_admin)]


def check_csrf(request: Request, form: FormData) -> None:
    if not keys_of(request).csrf_valid(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        raise CsrfRefused


async def checked_form(request: Request) -> FormData:
    """The POSTed form (urlencoded, no files), refused unless it carries the CSRF token."""
    form = await request.form(max_files=0)
    check_csrf(request, form)
    return form


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
