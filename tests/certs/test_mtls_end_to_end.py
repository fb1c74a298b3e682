"""validate-client-certificate and Verify() behind a live gateway, over real mTLS with curl,
with the CA's CRL downloaded from its distribution point before the policy runs."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certgate.certs.crl import CrlFetcher, CrlStore
from certgate.certs.verify import TrustStore, Verifier
from tests import pki
from tests.certs.crlserver import CrlServer
from tests.gateway.support import curl, start_verifying_gateway, write_identity

POLICY = """<policies><inbound>
<validate-client-certificate />
<choose><when condition="@(!context.Request.Certificate.Verify())">
  <return-response><set-status code="403" reason="Forbidden" /></return-response></when></choose>
<return-response><set-status code="200" reason="OK" /></return-response>
</inbound><on-error><base /></on-error></policies>"""


@pytest.fixture
async def setup(tmp_path):
    crl_server = CrlServer()
    url = await crl_server.start()
    root = pki.ca("E2E Root")
    issuing = root.issue("E2E Issuing CA", ca=True)
    clients = {
        "good": issuing.issue("good", crl_url=url),
        "revoked": issuing.issue("revoked", crl_url=url),
        "expired": issuing.issue(
            "expired",
            crl_url=url,
            not_before=pki.NOW - dt.timedelta(days=9),
            not_after=pki.NOW - dt.timedelta(days=1),
        ),
        "stranger": pki.ca("Unknown Root").issue("stranger"),
    }
    crl = pki.crl(issuing, [clients["revoked"].cert.serial_number])
    crl_server.body = crl.public_bytes(Encoding.DER)
    verifier = Verifier(TrustStore([root.cert], use_system_roots=False), CrlStore((), CrlFetcher()))
    gateway = await start_verifying_gateway(root, verifier, POLICY)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(root.cert_pem)
    identities = {}
    for name, issued in clients.items():
        identities[name] = write_identity(issued, tmp_path, name)
    yield gateway.https_port, ca_file, identities, crl_server
    await gateway.close()
    await crl_server.stop()


@pytest.mark.parametrize(
    ("client", "status"),
    [("good", 200), ("revoked", 401), ("expired", 401), ("stranger", 401), (None, 401)],
)
async def test_client_certificates_over_mtls(setup, tmp_path, client, status) -> None:
    port, ca_file, identities, crl_server = setup
    identity = identities[client] if client else None
    reply = await curl(port, "/a/x", ca=ca_file, identity=identity, tmp=tmp_path)
    assert reply.status == status, reply.stderr
    if status == 401:
        assert reply.json() == {"statusCode": 401, "message": "Invalid client certificate"}
    if client in ("good", "revoked"):
        assert crl_server.hits == 1
