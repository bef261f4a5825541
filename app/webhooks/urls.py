"""Which URLs a webhook may be sent to: http(s) only, and never to the service's own networks.

A URL whose host resolves to a loopback, private, link-local (cloud metadata: 169.254.169.254),
reserved or multicast address is refused (server-side request forgery), unless the operator
allows private networks. It is checked when the endpoint is saved, and again by each connection,
which goes to the very addresses checked (``app.webhooks.pinned_transport``: a name answering
otherwise the second time, DNS rebinding, changes nothing); redirects are never followed.
"""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000


class RefusedUrl(ValueError):
    pass


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_syntax(url: str) -> tuple[str, int]:
    """The host and port of an acceptable URL; else RefusedUrl saying why."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"At most {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("Only http and https URLs are accepted.")
    if not parts.hostname:
        raise RefusedUrl("The URL has no host.")
    if parts.username or parts.password:
        raise RefusedUrl("Credentials in the URL are not accepted.")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def _resolve(host: str, port: int) -> list[str]:
    try:
        resolved = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedUrl(f"The host {host!r} does not resolve ({exc}).") from None
    return list(dict.fromkeys(str(address[0]) for *_, address in resolved))


async def checked_addresses(host: str, port: int, *, allow_private_networks: bool) -> list[str]:
    """The addresses ``host`` resolves to, resolved once; RefusedUrl if it does not resolve, or
    if any of them is not public (unless private networks are allowed)."""
    try:
        # An address as the host: nothing to resolve (and no thread to wait for).
        addresses = [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        addresses = await _resolve(host, port)
    for address in addresses:
        if not allow_private_networks and not _public(address):
            raise RefusedUrl(
                f"The host {host!r} resolves to {address}, a loopback, private, link-local "
                "or otherwise non-public address: refused."
            )
    return addresses


async def check_url(url: str, *, allow_private_networks: bool) -> None:
    """Refuse (RefusedUrl) a URL that is not http(s), or whose host resolves to a non-public
    address (unless private networks are allowed), or does not resolve."""
    host, port = check_syntax(url)
    if allow_private_networks:
        return
    await checked_addresses(host, port, allow_private_networks=False)
