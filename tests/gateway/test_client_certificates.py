"""Inbound mTLS with real clients: any client certificate reaches the policies; SNI decides."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import NEGOTIATING, PLAIN
from tests.gateway.support import curl


@pytest.mark.parametrize("kind", ["trusted", "self_signed", "expired", "wrong_eku"])
async def test_any_client_certificate_reaches_the_policy(gateway, certs, tmp_path, kind):
    reply = await curl(
        gateway.https_port,
        "/echo/users/42",
        host=NEGOTIATING,
        ca=certs.ca_file,
        identity=getattr(certs, kind),
        tmp=tmp_path,
    )
    assert reply.status == 200, reply.stderr
    seen = {k.lower(): v for k, v in reply.json()["headers"]}
    assert seen["x-client-thumbprint"] == certs.issued[kind].thumbprint
    assert seen["x-matched-id"] == "42"


async def test_no_certificate_is_fine_on_a_negotiating_hostname(gateway, certs, tmp_path):
    reply = await curl(
        gateway.https_port, "/echo/users/1", host=NEGOTIATING, ca=certs.ca_file, tmp=tmp_path
    )
    assert reply.status == 200, reply.stderr
    seen = {k.lower(): v for k, v in reply.json()["headers"]}
    assert seen["x-client-thumbprint"] == "none"


async def test_non_negotiating_hostname_never_sees_a_certificate(gateway, certs, tmp_path):
    reply = await curl(
        gateway.https_port,
        "/echo/users/1",
        host=PLAIN,
        ca=certs.ca_file,
        identity=certs.trusted,
        tmp=tmp_path,
    )
    assert reply.status == 200, reply.stderr
    seen = {k.lower(): v for k, v in reply.json()["headers"]}
    assert seen["x-client-thumbprint"] == "none"
