"""Requests to a user's URL connect to the addresses that were checked (no DNS rebinding).

Left to itself, httpx resolves a URL's host when it connects, after ``urls.check_url`` resolved
it: a name answering a public address to the check and 127.0.0.1 to the connection would reach
the service's own network. Here the connection itself resolves the host once, refuses it unless
every address passes ``urls.checked_addresses`` (``AGENTRUN_WEBHOOK_ALLOW_PRIVATE_NETWORKS``),
and connects to those addresses only. The URL is left as it is, so the Host header, the TLS
server name (SNI) and the certificate's verification are the hostname's.

httpx's transport takes no network backend of its own: ``PinnedTransport`` builds its
connection pool again (``_pool``, what httpx's transport sends through) with ``PinnedBackend``;
tests/worker/test_pinned_addresses.py fails should httpx change that.
"""

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from app.webhooks.urls import checked_addresses

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """anyio's backend, connecting to a host's checked addresses rather than to its name."""

    def __init__(self, *, allow_private_networks: bool) -> None:
        self.allow_private_networks = allow_private_networks
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # RefusedUrl passes through httpx unchanged (it maps httpcore's errors only).
        addresses = await checked_addresses(
            host, port, allow_private_networks=self.allow_private_networks
        )
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None, "a host that resolves has an address"
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("No Unix socket for a user's URL.")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (no proxy from the environment), through ``PinnedBackend``."""

    def __init__(
        self, *, allow_private_networks: bool, verify: ssl.SSLContext | bool = True
    ) -> None:
        super().__init__(verify=verify, trust_env=False)
        limits = httpx.Limits()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(allow_private_networks=allow_private_networks),
        )
