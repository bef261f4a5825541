"""Honour ``X-Forwarded-*`` headers, but only from proxies we were told to trust.

With them, the links we build (``next``, ``previous``, ``file_url``) and the docs point at the
gateway's address and path prefix rather than at the container's, and the request log names
the client the gateway saw. From any other peer they are ignored: the peer is the client.
"""

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> list[Network]:
    """The networks of AGENTRUN_TRUSTED_PROXIES entries: addresses (``10.0.0.7``) or
    networks (``10.42.0.0/16``); "*" is handled by the caller. ValueError names a bad one."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is neither an IP address nor a network (such as 10.42.0.0/16)"
            ) from None
    return networks


class ForwardedHeadersMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: list[str]) -> None:
        self.app = app
        self.trust_all = "*" in trusted_proxies
        self.networks = trusted_networks(entry for entry in trusted_proxies if entry != "*")
        # Peers seen already: the few gateways in front are asked about once each. Bounded,
        # as a connection's peer address is chosen by whoever connects.
        self.verdicts: dict[str, bool] = {}

    def _is_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        return client is not None and self._trusts(client[0])

    def _trusts(self, peer: str) -> bool:
        if self.trust_all:
            return True
        verdict = self.verdicts.get(peer)
        if verdict is None:
            try:
                address = ipaddress.ip_address(peer)
            except ValueError:  # a unix socket's peer, say: no address to trust
                verdict = False
            else:
                verdict = any(address in network for network in self.networks)
            if len(self.verdicts) < 1024:
                self.verdicts[peer] = verdict
        return verdict

    def _forwarded_client(self, value: bytes | None) -> str | None:
        """The client of an ``X-Forwarded-For`` chain: each proxy appends the peer it saw, so
        the right-most entry not itself a trusted proxy. Entries left of it were written by
        the client and prove nothing."""
        if not value:
            return None
        chain = [entry.strip() for entry in value.decode("latin-1").split(",")]
        chain = [entry for entry in chain if entry]
        for entry in reversed(chain):
            if not self._trusts(entry):
                return entry
        return chain[0] if chain else None

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
        if client_ip := self._forwarded_client(headers.get("x-forwarded-for")):
            scope["client"] = (client_ip, 0)
        if prefix := first("x-forwarded-prefix"):
            prefix = "/" + prefix.strip("/")
            scope["root_path"] = prefix + scope.get("root_path", "")
            scope["path"] = prefix + scope["path"]
        await self.app(scope, receive, send)
