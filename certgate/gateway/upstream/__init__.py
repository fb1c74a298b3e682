"""The upstream leg: client TLS identities, keep-alive pools, an HTTP/1.1 client, the Forwarder."""

from certgate.gateway.upstream.backend import Backend, certificate_id, compile_backend
from certgate.gateway.upstream.connection import ResponseBody
from certgate.gateway.upstream.forwarder import Forwarder
from certgate.gateway.upstream.pool import Pool, Pools
from certgate.gateway.upstream.tls import BackendTrust, ClientIdentity, Identities

__all__ = [
    "Backend",
    "BackendTrust",
    "ClientIdentity",
    "Forwarder",
    "Identities",
    "Pool",
    "Pools",
    "ResponseBody",
    "certificate_id",
    "compile_backend",
]
