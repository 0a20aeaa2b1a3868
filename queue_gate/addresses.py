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
import socket
from dataclasses import dataclass

from aiohttp import web

from queue_gate.settings import Settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_V4_MAPPED = bytes(10) + b"\xff\xff"


@dataclass(frozen=True, slots=True)
class _Net:
    """A network as integers, for a membership test without building ipaddress objects."""

    size: int  # 4 or 16 bytes
    network: int
    mask: int

    @classmethod
    def of(cls, spec: str) -> _Net:
        net = ipaddress.ip_network(spec, strict=False)
        return cls(4 if net.version == 4 else 16, int(net.network_address), int(net.netmask))

    def __contains__(self, packed: bytes) -> bool:
        return len(packed) == self.size and int.from_bytes(packed, "big") & self.mask == \
            self.network


@dataclass(frozen=True)
class AddressPolicy:
    trusted_networks: tuple[_Net, ...]
    trusted_proxies: tuple[_Net, ...]
    # Where call-centre agents' passes are honoured (QUEUE_GATE_AGENT_NETWORKS); empty:
    # anywhere.
    agent_networks: tuple[_Net, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(tuple(_Net.of(spec) for spec in settings.trusted_networks),
                   tuple(_Net.of(spec) for spec in settings.trusted_proxies),
                   tuple(_Net.of(spec) for spec in settings.agent_networks))

    def agent_allowed(self, address: str | None) -> bool:
        """Whether an agent's pass may be used from this client address."""
        if not self.agent_networks:
            return True
        return address is not None and _within(address, self.agent_networks)

    def client_address(self, request: web.Request) -> str | None:
        """The peer, or, when the peer is a trusted proxy, the last address in
        X-Forwarded-For that is not one of our proxies (earlier entries can be forged)."""
        peer = request.remote or None
        if peer is None or not self.trusted_proxies or not _within(peer, self.trusted_proxies):
            return peer
        forwarded = request.headers.get("X-Forwarded-For", "")
        for part in reversed([p.strip() for p in forwarded.split(",") if p.strip()]):
            packed = _packed(part)
            if packed is None:
                return peer
            if not any(packed in net for net in self.trusted_proxies):
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
    # The agent's own bytes: one that is not UTF-8 arrives with surrogate escapes.
    return hashlib.sha256(f"{prefix}|{agent}".encode("utf-8", "surrogateescape")
                          ).hexdigest()[:16]


def _packed(address: str) -> bytes | None:
    """The address's bytes (4 or 16), or None if it is not an address. inet_pton is C and
    a hundred times cheaper than ipaddress, which matters once per join."""
    raw = address.strip("[]")
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in raw else socket.AF_INET, raw)
    except (OSError, UnicodeEncodeError):  # not an address; bytes not UTF-8 among them
        return None


def _within(address: str, networks: tuple[_Net, ...]) -> bool:
    packed = _packed(address)
    return packed is not None and any(packed in net for net in networks)


def _prefix(address: str, *, v4_bits: int) -> str:
    """IPv4: the address (or its /24); IPv6: its /64; anything unparsable: itself."""
    if ":" not in address:
        return address if v4_bits == 32 else address.rpartition(".")[0]
    packed = _packed(address)
    if packed is None:
        return address
    if packed[:12] == _V4_MAPPED:
        return _prefix(socket.inet_ntop(socket.AF_INET, packed[12:]), v4_bits=v4_bits)
    return packed[:8].hex() + "::/64"
