"""Session resumption never crosses hostname bindings (issue 11): a session made under one SNI
name, with one client certificate, must not be resumed under another binding (where it would carry
that certificate into a binding that asked for none, or for another one)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl

import pytest

from certgate.gateway.config import HostnameConfig
from tests import pki
from tests.gateway.conftest import NEGOTIATING, PLAIN, hostnames, make_config
from tests.gateway.support import material

SHARED_A = "a.shared.test"
SHARED_B = "b.shared.test"


def _get(port: int, context: ssl.SSLContext, host: str, session) -> tuple:
    """One request on a new connection; returns (session, reused, thumbprint the policy saw)."""
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname=host, session=session) as tls,
    ):
        tls.sendall(f"GET /echo/users/1 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the gateway")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += tls.recv(65536)
        seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
        return tls.session, tls.session_reused, seen["x-client-thumbprint"]


@pytest.fixture
async def shared_gateway(certs, backend, forwarder):
    """Two bindings serving the same server certificate (one SAN list), plus the usual ones."""
    from certgate.gateway.server import GatewayServer

    shared = material(certs.ca.issue(SHARED_A, dns=[SHARED_A, SHARED_B], ips=["127.0.0.1"]))
    bindings = [
        *hostnames(certs),
        HostnameConfig(SHARED_A, shared, negotiate_client_certificate=True),
        HostnameConfig(SHARED_B, shared, negotiate_client_certificate=True),
    ]
    server = GatewayServer(make_config(certs, backend.url, hostnames=bindings), forwarder=forwarder)
    await server.start("127.0.0.1", 0, None)
    yield server
    await server.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize(("first", "second"), [(SHARED_A, SHARED_B), (NEGOTIATING, PLAIN)])
async def test_a_session_is_not_resumed_under_another_hostname(
    shared_gateway, backend, certs, tmp_path, version, first, second
):
    client = pki.issue("session-owner")
    cert, key = client.write(tmp_path, "client")
    owner = ssl.create_default_context(cafile=str(certs.ca_file))
    owner.minimum_version = owner.maximum_version = version
    owner.load_cert_chain(str(cert), str(key))
    port = shared_gateway.https_port
    session, _, seen = await asyncio.to_thread(_get, port, owner, first, None)
    assert seen == client.thumbprint
    # The same hostname resumes (the cache works) ...
    _, reused, seen = await asyncio.to_thread(_get, port, owner, first, session)
    assert reused and seen == client.thumbprint
    # ... under another hostname it is not: either declined (a full handshake under that
    # binding's rules) or, where OpenSSL resumes it anyway (TLS 1.2), cut before any request.
    requests = backend.requests
    try:
        _, reused, seen = await asyncio.to_thread(_get, port, owner, second, session)
    except OSError:
        assert backend.requests == requests
    else:
        assert not reused
        assert seen == (client.thumbprint if second == SHARED_B else "none")


def _client_hello(server_name: bytes) -> bytes:
    """The first flight of a real OpenSSL client."""
    from OpenSSL import SSL

    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_tlsext_host_name(server_name)
    client.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        client.do_handshake()
    return client.bio_read(65536)


def test_the_requested_server_name_is_read_from_a_real_client_hello():
    from certgate.gateway.tls import client_hello_server_name

    hello = _client_hello(b"b.shared.test")
    assert client_hello_server_name(hello) == b"b.shared.test"
    # cut anywhere, it is never a wrong name (and never an exception)
    for end in range(len(hello)):
        assert client_hello_server_name(hello[:end]) in (None, b"b.shared.test")
    assert client_hello_server_name(b"GET / HTTP/1.1\r\n") is None
