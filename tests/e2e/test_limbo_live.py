"""x509-limbo's cases that carry the leaf's private key, presented over real TLS to a live gateway
whose API answers 403 unless `context.Request.Certificate.Verify()` (issue 5, "End to end").

The gateway runs in-process (`GatewayServer` over a `SnapshotBuilder` of a temp store, as
`certgate serve` wires them); each case is configured through the real management API (service CA
certificates, trust settings, CRL resources), then its leaf is presented with Python's `ssl`.

The gateway verifies at the current time, with its default depth limit and revocation checking, and
does not match host names. Cases are excluded by rule, never by outcome:
- hostname: SERVER cases whose expected peer name is not literally in the leaf's SAN (the client-
  usable subset rule of tests/certs/limbo.py: the name match may be what decides them);
- validation_time / max_chain_depth: the verifier's verdict with the case's own time (depth)
  differs from its verdict with the gateway's (now, no limit);
- verifier: the verifier disagrees with limbo's expectation offline (where limbo encodes web-PKI
  rules that OpenSSL, and so APIM, does not apply; tests/certs/test_conformance.py compares the
  verifier with `openssl verify`).
Every presented case, excluded or not, must get from the gateway exactly the verifier's verdict at
the gateway's settings: that is what this test adds over the offline conformance run.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import ssl
import warnings
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from certgate.gateway.server import GatewayServer
from certgate.snapshot.compiler import SnapshotBuilder
from tests import pki
from tests.certs import limbo
from tests.e2e.serve import UNVERIFIED
from tests.management.server import management_server

POLICY = f"""<policies><inbound>
<choose><when condition="@({UNVERIFIED})">
  <return-response><set-status code="403" reason="Forbidden" /></return-response></when></choose>
<return-response><set-status code="200" reason="OK" /></return-response>
</inbound><backend><base /></backend><outbound><base /></outbound>
<on-error><base /></on-error></policies>"""


@dataclasses.dataclass
class LiveCase:
    case: limbo.Case
    key_pem: str
    excluded: str | None
    gateway_verdict: bool  # the verifier's, at the gateway's settings


def _live_cases() -> tuple[list[LiveCase], Counter]:
    raw = json.loads((limbo.CORPUS / "limbo.json").read_bytes())["testcases"]
    keys = {t["id"]: t["peer_certificate_key"] for t in raw if t.get("peer_certificate_key")}
    timed = {t["id"] for t in raw if t["validation_time"]}  # the others validate at "now"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # limbo has non-positive serial numbers on purpose
        subset = {c.id: c for c in limbo.load_cases(keys)}
    excluded = Counter({"hostname": len(keys) - len(subset)})
    now = dt.datetime.now(dt.UTC)
    cases = []
    for case in subset.values():
        at_case = at_now = gateway = limbo.certgate_accepts(case)[0]
        if case.id in timed:
            at_now = gateway = limbo.certgate_accepts(dataclasses.replace(case, at=now))[0]
        if case.max_depth is not None:
            gateway = limbo.certgate_accepts(dataclasses.replace(case, at=now, max_depth=None))[0]
        reason = None
        if at_case != at_now:
            reason = "validation_time"
        elif at_now != gateway:
            reason = "max_chain_depth"
        elif at_case != case.expected:
            reason = "verifier"
        if reason is not None:
            excluded[reason] += 1
        cases.append(LiveCase(case, keys[case.id], reason, gateway))
    return cases, excluded


def _service(case: limbo.Case) -> dict:
    """The service properties one case needs: its anchors and its intermediates."""
    entries, seen = [], set()
    for store, certs in (("Root", case.trusted), ("CertificateAuthority", case.intermediates)):
        for cert in certs:
            der = cert.public_bytes(Encoding.DER)
            if (store, der) not in seen:
                seen.add((store, der))
                entries.append(
                    {"storeName": store, "encodedCertificate": base64.b64encode(der).decode()}
                )
    trust = {"useSystemRoots": False, "extendedKeyUsages": []}  # no purpose, as the verdict
    return {"certificates": entries, "clientCertificateTrust": trust}


class LiveGateway:
    """The management API and a gateway over one store; `configure` applies a case."""

    def __init__(self, management, builder: SnapshotBuilder, gateway: GatewayServer, ca: Path):
        self.management = management
        self.http = management.client(timeout=30)
        self.builder = builder
        self.gateway = gateway
        self.server_ca = ca
        self.crls: list[str] = []

    def write(self, method: str, path: str, properties: dict | None = None) -> str | None:
        """One management call; the error message when it is refused (400), else None."""
        headers = {"If-Match": "*"} if method == "DELETE" else {}
        body = None if properties is None else {"properties": properties}
        reply = self.http.request(method, path, json=body, headers=headers)
        if reply.status_code == 400:
            return reply.json()["error"]["message"]
        assert reply.is_success, f"{method} {path}: {reply.text}"
        return None

    def configure(self, case: limbo.Case) -> str | None:
        """Applies `case`; the exclusion reason when the management API refuses part of it."""
        if self.write("PATCH", "/", _service(case)) is not None:
            return "ca_refused_at_upload"
        for path in self.crls:
            self.write("DELETE", path)
        self.crls = []
        for index, crl in enumerate(case.crls):
            path = f"/certificateRevocationLists/c{index}"
            data = base64.b64encode(crl.public_bytes(Encoding.DER)).decode()
            if self.write("PUT", path, {"data": data}) is not None:
                return "crl_refused_at_upload"
            self.crls.append(path)
        self.gateway.update(self.builder.build())
        return None

    async def status(self, cert: Path, key: Path) -> int:
        """GET through the gateway presenting `cert`; 0 when the TLS handshake is refused."""
        context = ssl.create_default_context(cafile=self.server_ca)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.load_cert_chain(cert, key)
        private_key = load_pem_private_key(key.read_bytes(), None)
        if isinstance(private_key, dsa.DSAPrivateKey) or (
            isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.key_size < 256
        ):
            context.maximum_version = ssl.TLSVersion.TLSv1_2  # no DSA or P-192 in TLS 1.3
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", self.gateway.https_port, ssl=context, server_hostname="localhost"
            )
            writer.write(
                b"GET /limbo/case HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            line = await reader.readline()
            writer.close()
        except (OSError, ssl.SSLError):
            return 0
        return int(line.split()[1]) if line else 0


@pytest.fixture
async def live(tmp_path):
    server_ca = pki.ca("Limbo Gateway CA")
    ca_file = tmp_path / "gateway-ca.pem"
    ca_file.write_bytes(server_ca.cert_pem)
    server = pki.server(server_ca, "localhost")
    with management_server(tmp_path / "management") as management:
        builder = SnapshotBuilder(management.store, dev_server_pem=server.cert_pem + server.key_pem)
        gateway = GatewayServer(builder.build())
        await gateway.start("127.0.0.1", 0, None)
        live = LiveGateway(management, builder, gateway, ca_file)
        hostname = {"type": "Proxy", "hostName": "localhost", "defaultSslBinding": True}
        hostname["negotiateClientCertificate"] = True
        live.write("PATCH", "/", {"hostnameConfigurations": [hostname]})
        live.write(
            "PUT",
            "/apis/limbo",
            {"displayName": "limbo", "path": "limbo", "serviceUrl": "http://127.0.0.1:9"},
        )
        live.write(
            "PUT",
            "/apis/limbo/operations/all",
            {"displayName": "all", "method": "*", "urlTemplate": "/*"},
        )
        live.write("PUT", "/apis/limbo/policies/policy", {"format": "rawxml", "value": POLICY})
        try:
            yield live
        finally:
            live.http.close()
            await gateway.close()
            builder.close()


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
async def test_limbo_cases_with_keys_over_live_mtls(live: LiveGateway, tmp_path) -> None:
    if not (limbo.CORPUS / "limbo.json").exists():
        pytest.skip(f"corpus not found at {limbo.CORPUS}")
    cases, excluded = _live_cases()
    passed, failed, mismatched, unpresentable, refused = [], [], [], [], 0
    for live_case in cases:
        case = live_case.case
        cert, key = tmp_path / "leaf.pem", tmp_path / "leaf.key"
        cert.write_bytes(case.leaf.public_bytes(Encoding.PEM))
        key.write_text(live_case.key_pem)
        if refusal := live.configure(case):
            if live_case.excluded is None:
                live_case.excluded = refusal
                excluded[refusal] += 1
            continue
        try:
            status = await live.status(cert, key)
        except ssl.SSLError as error:  # this client cannot load the leaf or its key
            unpresentable.append(f"{case.id}: {error}")
            continue
        if status == 0 and live_case.gateway_verdict:  # e.g. a P-192 key: no TLS signature
            unpresentable.append(f"{case.id}: the TLS handshake was refused")
            continue
        refused += status == 0
        accepted = status == 200
        if accepted != live_case.gateway_verdict:
            mismatched.append(
                f"{case.id}: HTTP {status}, the verifier says {live_case.gateway_verdict}"
            )
        if live_case.excluded is None:
            (passed if accepted == case.expected else failed).append(
                f"{case.id}: expected {case.expected}, HTTP {status}"
            )
    for live_case in cases:
        if live_case.excluded not in (None, "hostname"):
            print(f"excluded ({live_case.excluded}): {live_case.case.id}")
    for line in failed + mismatched + unpresentable:
        print(line)
    print(f"limbo live: {len(passed)} passed, {len(failed)} failed")
    print(
        f"excluded: {dict(excluded)}; not presentable: {len(unpresentable)}; TLS refused: {refused}"
    )
    assert failed == [] and mismatched == []
    assert len(passed) >= 90 and len(unpresentable) <= 1
