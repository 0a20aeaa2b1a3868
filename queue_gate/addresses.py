"""Who is asking: the client's address behind trusted proxies, and what limits apply to it.

Join limits count per IPv4 address or per IPv6 /64 (one household's prefix). Trusted
networks (a care home's or a hospital's, configured by operators) are not limited. A pass
is tied loosely to a browser: a hash of its network prefix and user agent, never stored raw.
Addresses stay strings on the hot path; `ipaddress` objects are built only where a network
must be compared or an IPv6 prefix computed (it costs a tenth of a join otherwise).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from aiohttp import web

from queue_gate.settings import Settings

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

    def client_address(self, request: web.Request) -> str | None:
        """The peer, or, when the peer is a trusted proxy, the last address in
        X-Forwarded-For that is not one of our proxies (earlier entries can be forged)."""
        peer = request.remote or None
        if peer is None or not self.trusted_proxies or not _within(peer, self.trusted_proxies):
            return peer
        forwarded = request.headers.get("X-Forwarded-For", "")
        for part in reversed([p.strip() for p in forwarded.split(",") if p.strip()]):
            if _parse(part) is None:
                return peer
            if not _within(part, self.trusted_proxies):
                return part
        return peer

    def join_limit_key(self, address: str | None) -> str | None:
        """What to count joins against; None when the address is not limited."""
        if address is None:
            return None
        if self.trusted_networks and _within(address, self.trusted_networks):
            return None
        return _prefix(address, v4_bits=32)


def browser_fingerprint(request: web.Request, address: str | None) -> str:
    prefix = _prefix(address, v4_bits=24) if address is not None else "-"
    agent = request.headers.get("User-Agent", "")
    return hashlib.sha256(f"{prefix}|{agent}".encode()).hexdigest()[:16]


def _parse(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(raw.strip("[]"))
    except ValueError:
        return None


def _within(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in networks)


def _prefix(address: str, *, v4_bits: int) -> str:
    """IPv4: the address (or its /24); IPv6: its /64; anything unparsable: itself."""
    if ":" not in address:
        return address if v4_bits == 32 else address.rpartition(".")[0]
    parsed = _parse(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return _prefix(str(parsed.ipv4_mapped), v4_bits=v4_bits)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
