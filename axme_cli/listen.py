"""The loopback `HOST:PORT` of the daemon's TCP listener: one reading for `axme daemon start
--listen`, `python -m axme_daemon --listen` and `AXME_LISTEN`."""

from __future__ import annotations

import ipaddress


class BadListen(ValueError):
    """A listen address that is not a loopback HOST:PORT."""


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:PORT` for IPv6) as a loopback host and a port. There is no opt-in
    for other interfaces: the API's keys travel in clear text, so a remote client reaches it
    through a tunnel (`ssh -L`), never directly."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not port.isdigit() or int(port) > 65535 or not _is_loopback(host):
        raise BadListen(
            f"expected a loopback HOST:PORT such as 127.0.0.1:8765 or [::1]:8765, got {value!r}"
        )
    return ("127.0.0.1" if host == "localhost" else host), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
