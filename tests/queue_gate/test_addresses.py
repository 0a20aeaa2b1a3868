"""Counting joins per address: IPv4 addresses, IPv6 /64s, trusted networks and proxies."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from queue_gate.addresses import AddressPolicy, browser_fingerprint
from tests.queue_gate.conftest import gate_settings


class Peer:
    """The one thing a request asks its transport here: who is on the other end."""

    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.host, 40000) if name == "peername" else default


def request_from(host: str, headers: dict[str, str]) -> web.Request:
    return make_mocked_request("GET", "/", headers=headers, transport=Peer(host))


def policy(**overrides: object) -> AddressPolicy:
    return AddressPolicy.from_settings(gate_settings("redis://x", "http://x", **overrides))


def test_one_household_one_counter() -> None:
    p = policy()
    assert p.join_limit_key("2001:db8:1:2::1") == p.join_limit_key("2001:db8:1:2:ffff::9")
    assert p.join_limit_key("2001:db8:1:2::1") != p.join_limit_key("2001:db8:1:3::1")
    assert p.join_limit_key("198.51.100.7") == "198.51.100.7"
    # An IPv4 client seen through an IPv6 socket counts as that IPv4 address.
    assert p.join_limit_key("::ffff:198.51.100.7") == "198.51.100.7"


def test_trusted_networks_have_no_limit() -> None:
    p = policy(trusted_networks=("10.0.0.0/8", "2001:db8:aa::/48"))
    assert p.join_limit_key("10.20.30.40") is None
    assert p.join_limit_key("2001:db8:aa:1::5") is None
    assert p.join_limit_key("11.0.0.1") == "11.0.0.1"
    assert p.join_limit_key("2001:db8:ab::5") is not None


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    headers = {"X-Forwarded-For": "203.0.113.9, 198.51.100.20, 10.0.0.2"}
    behind = policy(trusted_proxies=("10.0.0.0/8",))
    request = request_from("127.0.0.1", headers)
    # The peer, 127.0.0.1, is not a trusted proxy here.
    assert behind.client_address(request) == "127.0.0.1"
    trusting = policy(trusted_proxies=("127.0.0.1/32", "10.0.0.0/8"))
    # The last address that is not one of ours; the first entry could be forged.
    assert trusting.client_address(request) == "198.51.100.20"
    garbage = request_from("127.0.0.1", {"X-Forwarded-For": "not-an-ip"})
    assert trusting.client_address(garbage) == "127.0.0.1"


def test_fingerprint_tolerates_a_changing_last_octet_not_another_browser() -> None:
    request = make_mocked_request("GET", "/", headers={"User-Agent": "Firefox"})
    other = make_mocked_request("GET", "/", headers={"User-Agent": "Chrome"})
    assert browser_fingerprint(request, "198.51.100.7") == browser_fingerprint(
        request, "198.51.100.99")
    assert browser_fingerprint(request, "198.51.100.7") != browser_fingerprint(
        other, "198.51.100.7")
