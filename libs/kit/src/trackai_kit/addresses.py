"""Which IP addresses may stand for a visitor (and so reach Meta as ``client_ip_address``).

Only globally reachable unicast addresses, by the IANA special-purpose registries the stdlib's
``ipaddress`` encodes: a private, loopback, link-local, shared (CGNAT), reserved, documentation,
multicast or unspecified address is a proxy, a pod, a test value or a mistake, never a buyer.
"""

from __future__ import annotations

import ipaddress

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IpAddress | None:
    """An address from ``text`` (with or without a port or brackets); IPv4-mapped IPv6 unwrapped."""
    value = text.strip().strip('"')
    if value.startswith("["):  # "[2001:db8::1]:443"
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # "203.0.113.7:51234"
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IpAddress) -> bool:
    """Globally reachable unicast: what a visitor's browser can appear as on the internet."""
    # ``is_global`` already excludes private, loopback, link-local, shared, reserved and
    # documentation ranges; multicast is "global" by the registry yet never a client.
    return address.is_global and not address.is_multicast


def public_ip(text: str) -> str | None:
    """``text`` as a canonical address when it is a public one, else ``None``."""
    address = parse_ip(text)
    return str(address) if address is not None and is_public(address) else None
