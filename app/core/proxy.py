"""Honour ``X-Forwarded-*`` headers, but only from proxies we were told to trust.

With them, the links we build (``next``, ``previous``, ``file_url``) and the docs point at the
gateway's address and path prefix rather than at the container's.
"""

from starlette.types import ASGIApp, Receive, Scope, Send


class ForwardedHeadersMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: list[str]) -> None:
        self.app = app
        self.trust_all = "*" in trusted_proxies
        self.trusted = set(trusted_proxies)

    def _is_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        return self.trust_all or (client is not None and client[0] in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._is_trusted(scope):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value for name, value in scope["headers"]}
        scope = dict(scope)

        def first(name: str) -> str | None:
            # A chain of proxies appends: the left-most value is the client-facing one.
            value = headers.get(name)
            return value.decode("latin-1").split(",")[0].strip() if value else None

        if proto := first("x-forwarded-proto"):
            scope["scheme"] = proto
        if host := first("x-forwarded-host"):
            scope["headers"] = [
                (name, value) for name, value in scope["headers"] if name != b"host"
            ] + [(b"host", host.encode("latin-1"))]
        if client_ip := first("x-forwarded-for"):
            scope["client"] = (client_ip, 0)
        if prefix := first("x-forwarded-prefix"):
            prefix = "/" + prefix.strip("/")
            scope["root_path"] = prefix + scope.get("root_path", "")
            scope["path"] = prefix + scope["path"]
        await self.app(scope, receive, send)
