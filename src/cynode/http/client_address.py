"""Who is on the other end of a request: the client address, and the source it is throttled as.

Owns forwarded-for trust. ``X-Forwarded-For`` is believed only when the peer is a configured
trusted proxy, and then only as far as the chain of trusted proxies goes: walking the entries from
the right, the first address that is not a trusted proxy is the client (every entry left of it was
written by someone we cannot vouch for). Limits key on the *source*: an IPv4 address, or the /64
an IPv6 address belongs to, since one IPv6 host is usually handed a whole /64.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

IPV6_SOURCE_PREFIX: Final = 64

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(value: str | None) -> IpAddress | None:
    try:
        return ipaddress.ip_address(value.strip()) if value else None
    except ValueError:
        return None


class ClientAddressResolver:
    """The client address of a request, given its peer address and ``X-Forwarded-For`` header."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted: tuple[IpNetwork, ...] = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def _is_trusted(self, address: IpAddress) -> bool:
        return any(address.version == net.version and address in net for net in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address as text; None when no usable address is known.

        An unparsable entry in a trusted chain ends the walk: the last address we could trust the
        origin of (the proxy that wrote it) stands in for the client.
        """
        address = _parse(peer)
        if address is None or not self._trusted or not forwarded_for:
            return None if address is None else str(address)
        for entry in reversed(forwarded_for.split(",")):
            if not self._is_trusted(address):
                break
            forwarded = _parse(entry)
            if forwarded is None:
                break
            address = forwarded
        return str(address)


def source_network(address: str | None) -> str | None:
    """The network a client address is limited as: the address itself for IPv4, its /64 for IPv6."""
    parsed = _parse(address)
    if parsed is None:
        return None
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"{parsed.ipv4_mapped}/32"
        return str(ipaddress.IPv6Network(f"{parsed}/{IPV6_SOURCE_PREFIX}", strict=False))
    return f"{parsed}/32"
