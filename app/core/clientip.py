"""The client's IP address, honouring X-Forwarded-For only when a trusted proxy sent it."""

from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address, ip_network

from starlette.requests import HTTPConnection

IPAddress = IPv4Address | IPv6Address


def _parse(value: str) -> IPAddress | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:51234"
        value = value.split(":", 1)[0]
    try:
        return ip_address(value)
    except ValueError:
        return None


class ClientIPResolver:
    """Finds who is really calling.

    Without trusted proxies the TCP peer is the client: anyone can write an X-Forwarded-For
    header, so believing it would let an attacker pick a fresh "IP" for every request and walk
    past per-IP rate limits. With trusted proxies, the header is read from the right (each proxy
    appends the address it saw) and the first address that is not a trusted proxy wins.
    """

    def __init__(self, trusted_proxies: list[str]) -> None:
        self._networks = [ip_network(entry, strict=False) for entry in trusted_proxies]

    def _trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str | None:
        peer_address = _parse(peer) if peer else None
        if peer_address is None:
            return peer
        if not forwarded_for or not self._trusted(peer_address):
            return str(peer_address)
        client = peer_address
        for hop in reversed(forwarded_for.split(",")):
            address = _parse(hop)
            if address is None:
                # A garbled entry: everything left of it could have been written by anyone.
                break
            client = address
            if not self._trusted(address):
                break
        return str(client)

    def client_ip(self, connection: HTTPConnection) -> str | None:
        peer = connection.client.host if connection.client else None
        return self.resolve(peer, connection.headers.get("x-forwarded-for"))


def rate_limit_key(ip: str | None) -> str:
    """IPv6 clients usually own a whole /64, so they are limited per /64, not per address."""
    if ip is None:
        return "unknown"
    address = _parse(ip)
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(IPv6Network(f"{address}/64", strict=False))
    return str(address) if address is not None else ip
