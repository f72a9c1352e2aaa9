"""Where a workflow's base URL may point: checked when it is saved, and on the resolved address at call time;
and where a file URL in a cell may point (`file_url_problem`, checked at import and on edited inputs).

Self-hosted Dify usually lives on a private address (the same host, a container network, an intranet name), so
private addresses are allowed by default. What is always refused, unless an operator lists it in
BATCHES_ALLOWED_UPSTREAM_HOSTS: link-local addresses (169.254.0.0/16, fe80::/10), where cloud metadata services
answer, and the other clouds' metadata addresses. BATCHES_ALLOWED_UPSTREAM_HOSTS narrows the base URL's hosts
further: names, `*.domain`, and CIDR ranges.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from batches.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
# Metadata services outside the link-local ranges (Alibaba Cloud, AWS over IPv6), and their well-known names.
METADATA_ADDRESSES = frozenset(map(ipaddress.ip_address, ["100.100.100.200", "fd00:ec2::254"]))
METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    "metadata.tencentyun.com", "metadata.azure.internal",
})  # fmt: skip
RESOLVE_CACHE_SECONDS = 5.0  # a runner makes many calls a second to one host; the check need not resolve each time
CONNECT_FAILED = "cannot connect to the upstream (refused, unreachable, unknown host or no answer)"

_resolved: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}


class UpstreamRefused(Exception):
    """The base URL or the address it resolves to is not allowed; str(error) says why, in one line."""


def base_url_problem(url: str) -> str | None:
    """Why the base URL cannot be used (None: it can): http(s) only, a host, no user-info, query or fragment.

    A trailing `?` or `#` would turn the path appended for each call into a query or fragment, reaching any path.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "use an http:// or https:// URL with a host"
    if "?" in url or "#" in url:
        return "a base URL cannot have a query (?) or a fragment (#)"
    if "@" in parts.netloc:
        return "a base URL cannot hold a user name or password (user-info)"
    return None


def host_allowed(url: str, patterns: Sequence[str]) -> bool:
    """Whether the URL's host matches `patterns`: host names, `*.suffix` for any host under suffix, CIDR ranges
    (which match a host written as an address). No patterns allow every host."""
    if not patterns:
        return True
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    address = _address(host)
    return bool(host) and any(_host_matches(host, address, pattern.strip().lower()) for pattern in patterns)


def _host_matches(host: str, address: IPAddress | None, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:].rstrip("."))
    network = _network(pattern)
    if network is not None:
        return address is not None and address in network
    return host == pattern.strip("[]").rstrip(".")


def _address(host: str) -> IPAddress | None:
    """The address a host written as one stands for, in any form a resolver accepts (`2852039166`, `0xa9.0xfe.0xa9.0xfe`
    and `169.254.43518` are 169.254.169.254 too); None for a name."""
    try:
        address: IPAddress = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _network(pattern: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(pattern.strip("[]"), strict=False)
    except ValueError:
        return None


def listed_networks() -> list[IPNetwork]:
    """The CIDR ranges (and single addresses) an operator listed in BATCHES_ALLOWED_UPSTREAM_HOSTS."""
    return [net for net in map(_network, settings.BATCHES_ALLOWED_UPSTREAM_HOSTS) if net is not None]


def _refused(address: IPAddress | None) -> bool:
    """Link-local or a metadata address, and not listed by an operator."""
    if address is None or not (address in METADATA_ADDRESSES or any(address in net for net in LINK_LOCAL)):
        return False
    return not any(address in net for net in listed_networks())


def address_problem(address: str) -> str | None:
    """Why a call may not go to this address: link-local or a cloud metadata address, unless an operator listed
    it."""
    parsed = _address(address)
    if not _refused(parsed):
        return None
    return f"the upstream resolves to a link-local address ({parsed}), refused unless listed in " + (
        "BATCHES_ALLOWED_UPSTREAM_HOSTS"
    )


def file_url_problem(url: str) -> str | None:
    """Why Dify must not be asked to fetch this file URL (None: it may): the base URL's address rules, on the host
    as written. A name is not resolved here (Dify resolves it, on its own network), but the metadata services'
    well-known names are refused."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host not in METADATA_HOSTS and not _refused(_address(host)):
        return None
    return f"points at a link-local or cloud metadata address ({host}), refused unless listed in " + (
        "BATCHES_ALLOWED_UPSTREAM_HOSTS"
    )


def save_problem(url: str) -> str | None:
    """Everything that can be known about a base URL without resolving it."""
    problem = base_url_problem(url)
    if problem is None:
        problem = address_problem(urlsplit(url).hostname or "")
    return problem


def check_url(url: str) -> None:
    """Raise UpstreamRefused unless every address the URL's host resolves to may be called (blocking)."""
    host, port = _host_port(url)
    _check_addresses(_cached(host, port) or _remember(host, port, _resolve(host, port)))


async def check_url_async(url: str) -> None:
    """check_url for a running event loop (resolved in the loop's executor)."""
    host, port = _host_port(url)
    addresses = _cached(host, port)
    if addresses is None:
        resolved = await asyncio.get_running_loop().run_in_executor(None, _resolve, host, port)
        addresses = _remember(host, port, resolved)
    _check_addresses(addresses)


def _host_port(url: str) -> tuple[str, int]:
    problem = base_url_problem(url)
    if problem is not None:
        raise UpstreamRefused(problem)
    parts = urlsplit(url)
    return str(parts.hostname), parts.port or (443 if parts.scheme == "https" else 80)


def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        return tuple(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except OSError:
        raise ConnectionError(CONNECT_FAILED) from None


def _cached(host: str, port: int) -> tuple[str, ...] | None:
    entry = _resolved.get((host, port))
    return entry[1] if entry is not None and entry[0] > time.monotonic() else None


def _remember(host: str, port: int, addresses: tuple[str, ...]) -> tuple[str, ...]:
    if len(_resolved) > 1000:
        _resolved.clear()
    _resolved[(host, port)] = (time.monotonic() + RESOLVE_CACHE_SECONDS, addresses)
    return addresses


def _check_addresses(addresses: tuple[str, ...]) -> None:
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            raise UpstreamRefused(problem)
