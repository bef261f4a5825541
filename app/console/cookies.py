"""The console's cookies: the signed session and the CSRF secret, and the tokens forms carry.

The session cookie holds the SHA-256 of the API token the user signed in with (never the key
itself: a stolen cookie is no API key) and when it expires, signed with HMAC-SHA256. Every
request reads the token again (``authenticate_digest``): revoking the token or disabling its
user ends the session at once.

CSRF: a random value in its own HttpOnly cookie, and in every state-changing form the HMAC of
it (a signed double submit). A page of another site can neither read the cookie nor forge
the HMAC; the cookies being SameSite=Strict, a cross-site form does not even carry them.
"""

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "agentrun_console"
CSRF_COOKIE = "agentrun_console_csrf"
CSRF_FIELD = "csrf_token"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class ConsoleKeys:
    """The signing key of one console, and how long a session lasts."""

    secret: bytes
    session_seconds: float

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self.secret, f"{purpose}:{value}".encode(), hashlib.sha256)
        return _b64(mac.digest())

    def session_value(self, token_digest: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.session_seconds)
        payload = f"{token_digest}.{expires}"
        return f"{payload}.{self._sign('session', payload)}"

    def token_digest_of(self, cookie: str | None, now: float | None = None) -> str | None:
        """The token digest of a session cookie that is ours and has not expired, else None."""
        if not cookie or cookie.count(".") != 2:
            return None
        digest, expires, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign("session", f"{digest}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return None
        return digest

    def csrf_token(self, csrf_cookie: str) -> str:
        return self._sign("csrf", csrf_cookie)

    def csrf_valid(self, csrf_cookie: str | None, submitted: object) -> bool:
        if not csrf_cookie or not isinstance(submitted, str) or not submitted:
            return False
        return hmac.compare_digest(submitted, self.csrf_token(csrf_cookie))


def cookie_path(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}/ui"


def _set(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=cookie_path(request),
        httponly=True,
        samesite="strict",
        # Behind an https gateway the scheme is the forwarded one (app/core/proxy.py).
        secure=request.url.scheme == "https",
    )


def set_session(request: Request, response: Response, keys: ConsoleKeys, digest: str) -> None:
    _set(request, response, SESSION_COOKIE, keys.session_value(digest), int(keys.session_seconds))


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))


def csrf_cookie_of(request: Request) -> tuple[str, bool]:
    """The request's CSRF cookie, and whether it is new (to be set on the response)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 64:
        return existing, False
    return secrets.token_urlsafe(24), True


def set_csrf_cookie(request: Request, response: Response, value: str) -> None:
    # As long as a session could last: a form left open for hours still posts.
    _set(request, response, CSRF_COOKIE, value, 7 * 24 * 3600)
