"""`/certificateRevocationLists/{id}` over the live HTTPS management API, and the Verifier built
from what is stored there."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from certgate.certs.trust import build_verifier
from tests import pki
from tests.management.server import management_server

ROOT = pki.ca("CRL Root")


@pytest.fixture
def client(tmp_path: Path):
    with management_server(tmp_path / "data") as server, server.client(timeout=30) as http:
        yield http, server


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_upload_pem_or_der_and_read_back_the_summary(client) -> None:
    http, _ = client
    crl = pki.crl(ROOT, [7], number=12)
    der = http.put(
        "/certificateRevocationLists/root",
        json={"properties": {"data": _b64(crl.public_bytes(Encoding.DER))}},
    )
    assert der.status_code == 201, der.text
    pem = http.put(
        "/certificateRevocationLists/root-pem",
        json={"properties": {"data": crl.public_bytes(Encoding.PEM).decode()}},
    )
    assert pem.status_code == 201, pem.text
    shown = http.get("/certificateRevocationLists/root").json()["properties"]
    assert shown["issuer"] == "CN=CRL Root"
    assert shown["number"] == "12" and shown["revokedCount"] == 1
    assert shown["thisUpdate"].endswith("Z") and shown["nextUpdate"].endswith("Z")
    assert "data" not in shown


def test_bad_uploads_are_400_naming_the_field(client) -> None:
    http, _ = client
    garbage = http.put(
        "/certificateRevocationLists/x", json={"properties": {"data": _b64(b"nope")}}
    )
    assert garbage.status_code == 400
    assert garbage.json()["error"]["details"][0]["target"] == "data"
    assert "not a PEM or DER X.509 CRL" in garbage.text
    missing = http.put("/certificateRevocationLists/x", json={"properties": {}})
    assert missing.status_code == 400 and "'data' is required" in missing.text


def test_crl_signed_by_the_wrong_key_is_refused_when_the_ca_is_known(client) -> None:
    http, _ = client
    entry = {"storeName": "Root", "encodedCertificate": _b64(ROOT.der)}
    assert http.patch("/", json={"properties": {"certificates": [entry]}}).status_code == 200
    forged = pki.crl(ROOT, signing_key=pki.new_key()).public_bytes(Encoding.DER)
    refused = http.put("/certificateRevocationLists/f", json={"properties": {"data": _b64(forged)}})
    assert refused.status_code == 400 and "signature does not verify" in refused.text
    genuine = pki.crl(ROOT).public_bytes(Encoding.DER)
    ok = http.put("/certificateRevocationLists/g", json={"properties": {"data": _b64(genuine)}})
    assert ok.status_code == 201


def test_build_verifier_from_stored_configuration(client) -> None:
    http, server = client
    leaf, revoked = ROOT.issue("client"), ROOT.issue("revoked")
    entry = {"storeName": "Root", "encodedCertificate": _b64(ROOT.der)}
    http.patch(
        "/",
        json={
            "properties": {
                "certificates": [entry],
                "clientCertificateTrust": {"useSystemRoots": False},
            }
        },
    )
    crl = pki.crl(ROOT, [revoked.cert.serial_number]).public_bytes(Encoding.DER)
    http.put("/certificateRevocationLists/r", json={"properties": {"data": _b64(crl)}})
    service = server.store.get("service").properties
    crls = [r.properties for r in server.store.list("certificateRevocationList")]
    verifier = build_verifier(service, crls)
    assert verifier.verify(leaf.cert).ok
    assert verifier.verify(revoked.cert).reason == "ClientCertificateRevoked"
    assert not verifier.trust.use_system_roots


def test_extended_key_usages_setting_reaches_the_verifier(client) -> None:
    http, server = client
    server_only = ROOT.issue("srv", eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    entry = {"storeName": "Root", "encodedCertificate": _b64(ROOT.der)}
    trust = {"useSystemRoots": False}
    http.patch("/", json={"properties": {"certificates": [entry], "clientCertificateTrust": trust}})
    assert build_verifier(server.store.get("service").properties).verify(server_only.cert).ok
    trust["extendedKeyUsages"] = [ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string]
    http.patch("/", json={"properties": {"clientCertificateTrust": trust}})
    assert not build_verifier(server.store.get("service").properties).verify(server_only.cert).ok
    bad = http.patch(
        "/", json={"properties": {"clientCertificateTrust": {"extendedKeyUsages": "x"}}}
    )
    assert bad.status_code == 400 and "extendedKeyUsages" in bad.text
