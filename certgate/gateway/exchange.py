"""What the HTTP/1.1 and HTTP/2 protocols hand the request handler: one exchange per request.

`Exchange` is the protocol-independent surface (request line, header pairs, body stream, connection
facts, `respond`). `ConnectionInfo` holds per-connection facts, including the client certificate,
turned into an `X509Certificate2` once per connection and only when something asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from certgate.gateway.body import InboundBody
from certgate.gateway.tls import PeerCertificates


class ConnectionInfo:
    """Facts about one client connection, shared by all its requests (the policy `connection`)."""

    __slots__ = (
        "_certificate",
        "_verifier",
        "authority",
        "cache",
        "client_ip",
        "client_port",
        "crl_prefetched",
        "host_port",
        "local_port",
        "log_fields",
        "peer",
        "scheme",
        "server_name",
        "tls",
    )

    def __init__(
        self,
        scheme: str,
        peername: Any,
        sockname: Any,
        tls: Any = None,
    ) -> None:
        self.scheme = scheme
        self.client_ip = peername[0] if peername else ""
        self.client_port = peername[1] if peername else 0
        self.local_port = sockname[1] if sockname else 0
        self.tls = tls
        self.peer: PeerCertificates | None = tls.peer if tls is not None else None
        self.server_name: str | None = None
        self._certificate: Any = None
        self._verifier: Any = None
        self.crl_prefetched: Any = None  # the prefetch function already awaited for this chain
        self.cache: dict[Any, Any] = {}  # per-connection verification results (Verify())
        self.authority: str | None = None  # the last Host seen and its split (handler's cache)
        self.host_port: tuple[str, int] = ("", 0)
        self.log_fields: Any = None  # the access log's per-connection fields (accesslog.py)

    @property
    def client_chain_der(self) -> list[bytes]:
        """The chain the client sent, leaf first, as DER."""
        return self.peer.der_chain if self.peer is not None else []

    def client_certificate(self, verifier: Any) -> Any:
        """The client certificate as an `X509Certificate2` (None without one), built once per
        connection and trust configuration (`verifier`), sharing the connection's result cache.
        It parses the DER only when a member is read."""
        peer = self.peer
        if peer is None:
            return None
        if self._certificate is None or self._verifier is not verifier:
            from certgate.certs.x509 import X509Certificate2

            self._certificate = X509Certificate2.from_der(
                peer.der, peer.chain_der, verifier, self.cache
            )
            self._verifier = verifier
        return self._certificate


class Exchange(Protocol):
    """One request/response on a connection (HTTP/1.1 or HTTP/2)."""

    method: str
    target: str  # raw request-target: /path?query, still percent-encoded
    authority: str  # Host header or :authority ('' when absent)
    # End-to-end request headers in wire order, without hop-by-hop ones, without a client-sent
    # Client-Cert / Client-Cert-Chain and without the stripped identity headers (stripping.py).
    headers: list[tuple[str, str]]
    forwarded_for: str | None  # the client's own X-Forwarded-For values, joined (None: absent)
    body: InboundBody | None
    conn: ConnectionInfo
    http_version: str
    responded: bool  # the response head went out (errors after it abort instead)
    sent: int  # response bytes written so far (HTTP/1.1: head and body; HTTP/2: body)

    async def respond(
        self,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]],
        body: Any,
        vetted: bool = False,
    ) -> None:
        """Sends the response; `body` is bytes or an async-iterable stream of chunks. Unless
        `vetted` (the reason and headers came from a strict parser or are the gateway's own), the
        head is checked for CR, LF and NUL first (`UnsafeHead`: nothing is written)."""
        ...
