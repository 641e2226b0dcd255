"""Which address counts as the client's: X-Forwarded-For only from trusted proxies."""

import pytest

from app.core.clientip import ClientIPResolver, rate_limit_key


class TestClientIPResolver:
    def test_without_trusted_proxies_the_peer_is_the_client(self):
        resolver = ClientIPResolver([])
        assert resolver.resolve("198.51.100.1", "203.0.113.9") == "198.51.100.1"

    def test_untrusted_peer_cannot_claim_another_address(self):
        resolver = ClientIPResolver(["10.0.0.0/8"])
        assert resolver.resolve("198.51.100.1", "203.0.113.9") == "198.51.100.1"

    def test_trusted_proxy_forwards_the_client(self):
        resolver = ClientIPResolver(["10.0.0.0/8"])
        assert resolver.resolve("10.0.0.5", "203.0.113.9") == "203.0.113.9"

    def test_rightmost_untrusted_hop_wins_over_spoofed_left_entries(self):
        resolver = ClientIPResolver(["10.0.0.0/8"])
        # The client wrote "1.2.3.4" itself; the proxies appended what they saw.
        forwarded = "1.2.3.4, 203.0.113.9, 10.0.0.7"
        assert resolver.resolve("10.0.0.5", forwarded) == "203.0.113.9"

    def test_garbage_entry_stops_the_walk(self):
        resolver = ClientIPResolver(["10.0.0.0/8"])
        assert resolver.resolve("10.0.0.5", "203.0.113.9, not-an-ip, 10.0.0.7") == "10.0.0.7"

    def test_ipv6_and_ports(self):
        resolver = ClientIPResolver(["::1"])
        assert resolver.resolve("::1", "[2001:db8::5]:4711") == "2001:db8::5"
        assert ClientIPResolver(["127.0.0.1"]).resolve("127.0.0.1", "198.51.100.3:80") == (
            "198.51.100.3"
        )

    def test_missing_peer(self):
        assert ClientIPResolver([]).resolve(None, "203.0.113.9") is None


class TestRateLimitKey:
    @pytest.mark.parametrize(
        ("ip", "key"),
        [
            ("203.0.113.9", "203.0.113.9"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
            (None, "unknown"),
        ],
    )
    def test_ipv6_clients_share_their_64(self, ip, key):
        assert rate_limit_key(ip) == key
