"""Who is asking: the client's address behind trusted proxies, and what limits apply to it.

Join limits count per IPv4 address or per IPv6 /64 (one household's prefix). Trusted
networks (a care home's or a hospital's, configured by operators) are not limited. A pass
is tied loosely to a browser: a hash of its network prefix and user agent, never stored raw.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from aiohttp import web

from queue_gate.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(specs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


@dataclass(frozen=True)
class AddressPolicy:
    trusted_networks: tuple[IPNetwork, ...]
    trusted_proxies: tuple[IPNetwork, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(_networks(settings.trusted_networks), _networks(settings.trusted_proxies))

    def client_address(self, request: web.Request) -> IPAddress | None:
        """The peer, or, when the peer is a trusted proxy, the last address in
        X-Forwarded-For that is not one of our proxies (earlier entries can be forged)."""
        peer = _parse(request.remote)
        if peer is None or not _within(peer, self.trusted_proxies):
            return peer
        forwarded = request.headers.get("X-Forwarded-For", "")
        for part in reversed([p.strip() for p in forwarded.split(",") if p.strip()]):
            address = _parse(part)
            if address is None:
                return peer
            if not _within(address, self.trusted_proxies):
                return address
        return peer

    def join_limit_key(self, address: IPAddress | None) -> str | None:
        """What to count joins against; None when the address is not limited."""
        if address is None or _within(address, self.trusted_networks):
            return None
        return _prefix(address)


def browser_fingerprint(request: web.Request, address: IPAddress | None) -> str:
    prefix = _prefix(address, v4_bits=24) if address is not None else "-"
    agent = request.headers.get("User-Agent", "")
    return hashlib.sha256(f"{prefix}|{agent}".encode()).hexdigest()[:16]


def _parse(raw: str | None) -> IPAddress | None:
    if not raw:
        return None
    try:
        return ipaddress.ip_address(raw.strip("[]"))
    except ValueError:
        return None


def _within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def _prefix(address: IPAddress, *, v4_bits: int = 32) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _prefix(address.ipv4_mapped, v4_bits=v4_bits)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(ipaddress.ip_network(f"{address}/{v4_bits}", strict=False))
