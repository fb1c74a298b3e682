"""Listening ports that belong to one `certgate serve`: refuse a port another process holds.

Gateway workers share their ports through SO_REUSEPORT, which would also let a second, unrelated
`certgate serve` (same user) join them and take half the connections. So a port is first bound
*without* SO_REUSEPORT: that fails while anything listens on it, including the workers of another
`certgate serve`. Only then does the supervisor reserve it for its own workers.
"""

from __future__ import annotations

import errno
import socket


class AddressInUse(OSError):
    """`host:port` is taken by another process."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"address already in use: {host}:{port}")
        self.host, self.port = host, port

    def __str__(self) -> str:
        return f"address already in use: {self.host}:{self.port}"


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_exclusive(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` that no other socket shares (SO_REUSEADDR only, so
    connections in TIME_WAIT from a previous run do not block a restart)."""
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise AddressInUse(host, port) from None
        raise
    return sock


def ensure_free(host: str, port: int) -> None:
    """Raises AddressInUse unless `host:port` can be bound exclusively right now."""
    if port != 0:
        bind_exclusive(host, port).close()
