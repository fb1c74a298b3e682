"""The TLS layer seen by real clients: openssl s_client, and Python's ssl for session resumption."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl

import pytest

from tests import pki
from tests.gateway.conftest import NEGOTIATING, PLAIN
from tests.gateway.support import run

CERT_REQUEST = b"Requested Signature Algorithms"  # s_client prints it only for a CertificateRequest


async def s_client(port: int, *args: str) -> bytes:
    _, out, err = await run(
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args, stdin=b"", timeout=15
    )
    return out + err


async def test_no_certificate_requested_on_a_non_negotiating_hostname(gateway):
    plain = await s_client(gateway.https_port, "-servername", PLAIN)
    negotiating = await s_client(gateway.https_port, "-servername", NEGOTIATING)
    assert b"subject=CN = " + PLAIN.encode() in plain
    assert CERT_REQUEST not in plain
    assert CERT_REQUEST in negotiating


@pytest.mark.parametrize(
    ("args", "subject"),
    [
        (["-servername", NEGOTIATING], NEGOTIATING),
        (["-servername", PLAIN], PLAIN),
        (["-servername", "unknown.example.test"], "localhost"),
        (["-noservername"], "localhost"),
    ],
)
async def test_sni_selects_the_server_certificate(gateway, args, subject):
    out = await s_client(gateway.https_port, *args)
    assert f"subject=CN = {subject}\n".encode() in out


async def test_tls_1_1_is_refused_and_1_2_accepted(gateway):
    old = await s_client(gateway.https_port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert b"alert protocol version" in old
    modern = await s_client(gateway.https_port, "-tls1_2")
    assert b"Protocol  : TLSv1.2" in modern


async def test_alpn_offers_h2_and_http11(gateway):
    assert b"ALPN protocol: h2" in await s_client(gateway.https_port, "-alpn", "h2,http/1.1")
    assert b"ALPN protocol: http/1.1" in await s_client(gateway.https_port, "-alpn", "http/1.1")


def _get_with_session(port, context, session, path):
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname=NEGOTIATING, session=session) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {NEGOTIATING}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += tls.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += tls.recv(65536)
        return tls.session, tls.session_reused, json.loads(body)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("size", ["small", "huge"])
async def test_resumed_session_keeps_the_client_certificate(
    gateway, certs, tmp_path, version, size
):
    """A huge certificate (~100 kB, 2000 SANs) does not fit a stateless ticket: the session
    cache keeps it server-side, so the handshake and the resumption both still work."""
    client = (
        pki.issue("self-signed-client")
        if size == "small"
        else pki.issue("huge-client", dns=[f"h{n}.a-long-label.example.test" for n in range(2000)])
    )
    cert, key = client.write(tmp_path, "client")
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    context.minimum_version = context.maximum_version = version
    context.load_cert_chain(str(cert), str(key))
    port = gateway.https_port
    session, _, first = await asyncio.to_thread(
        _get_with_session, port, context, None, "/echo/users/1"
    )
    _, reused, second = await asyncio.to_thread(
        _get_with_session, port, context, session, "/echo/users/2"
    )
    assert reused
    for reply in (first, second):
        seen = {k.lower(): v for k, v in reply["headers"]}
        assert seen["x-client-thumbprint"] == client.thumbprint
