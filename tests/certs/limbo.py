"""x509-limbo's client-usable subset, run through certgate's verifier, `openssl verify` (the oracle)
and pyca/cryptography.

The subset: the CLIENT cases, plus SERVER cases whose expected peer name is literally in the
leaf's SAN (so hostname matching cannot be what decides them). Each case is validated as a
certificate chain at its `validation_time` (now when it has none), with its depth limit and its
CRLs, without an extendedKeyUsage rule (OpenSSL's default: no purpose).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from certgate.certs.crl import CrlStore
from certgate.certs.crlinfo import CrlInfo
from certgate.certs.verify import TrustStore, Verifier
from tests.certs import openssl_oracle

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora" / "x509-limbo"


@dataclass
class Case:
    id: str
    expected: bool
    kind: str
    features: list[str]
    trusted: list[x509.Certificate]
    intermediates: list[x509.Certificate]
    leaf: x509.Certificate
    crls: list[x509.CertificateRevocationList]
    at: dt.datetime
    max_depth: int | None
    peer_name: dict | None


def _peer_name_in_san(leaf: x509.Certificate, peer: dict | None) -> bool:
    if peer is None:
        return False
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return False
    if peer["kind"] == "DNS":
        return peer["value"] in san.get_values_for_type(x509.DNSName)
    if peer["kind"] == "IP":
        return ipaddress.ip_address(peer["value"]) in san.get_values_for_type(x509.IPAddress)
    return peer["value"] in san.get_values_for_type(x509.RFC822Name)


def load_cases(ids: Collection[str] | None = None) -> list[Case]:
    """The client-usable subset (only the cases in `ids` when given), every PEM parsed once."""
    raw = json.loads((CORPUS / "limbo.json").read_bytes())["testcases"]
    cases = []
    for t in raw:
        if ids is not None and t["id"] not in ids:
            continue
        leaf = x509.load_pem_x509_certificate(t["peer_certificate"].encode())
        if t["validation_kind"] != "CLIENT" and not _peer_name_in_san(
            leaf, t["expected_peer_name"]
        ):
            continue
        at = dt.datetime.fromisoformat(t["validation_time"]) if t["validation_time"] else None
        cases.append(
            Case(
                t["id"],
                t["expected_result"] == "SUCCESS",
                t["validation_kind"],
                t["features"],
                [x509.load_pem_x509_certificate(p.encode()) for p in t["trusted_certs"]],
                [x509.load_pem_x509_certificate(p.encode()) for p in t["untrusted_intermediates"]],
                leaf,
                [x509.load_pem_x509_crl(p.encode()) for p in t["crls"]],
                at or dt.datetime.now(dt.UTC),
                t["max_chain_depth"],
                t["expected_peer_name"],
            )
        )
    return cases


def certgate_accepts(case: Case) -> tuple[bool, str]:
    """certgate's verdict as APIM's `Verify()` gives it: no EKU rule (no purpose), its CRLs."""
    trust = TrustStore(case.trusted, use_system_roots=False, extended_key_usages=())
    verifier = Verifier(trust, CrlStore([CrlInfo(c) for c in case.crls]))
    result = verifier.verify(
        case.leaf,
        case.intermediates,
        at=case.at,
        max_depth=case.max_depth,
        check_revocation=bool(case.crls),
    )
    return result.ok, result.detail


def question(case: Case) -> openssl_oracle.Question:
    """The same case for `openssl verify`."""
    return openssl_oracle.Question(
        [c.public_bytes(Encoding.DER) for c in case.trusted],
        [c.public_bytes(Encoding.DER) for c in case.intermediates],
        case.leaf.public_bytes(Encoding.DER),
        [c.public_bytes(Encoding.DER) for c in case.crls] if case.crls else None,
        case.at,
        case.max_depth,
    )


def pyca_accepts(case: Case) -> bool:
    """pyca/cryptography's verdict for the same case (it has no CRL support)."""
    try:
        store = verification.Store(case.trusted)
        builder = verification.PolicyBuilder().store(store).time(case.at)
        if case.max_depth is not None:
            builder = builder.max_chain_depth(case.max_depth)
        if case.kind == "CLIENT":
            verifier = builder.build_client_verifier()
        else:
            peer = case.peer_name
            subject = (
                x509.DNSName(peer["value"])
                if peer["kind"] == "DNS"
                else x509.IPAddress(ipaddress.ip_address(peer["value"]))
            )
            verifier = builder.build_server_verifier(subject)
        verifier.verify(case.leaf, case.intermediates)
    except (verification.VerificationError, ValueError, TypeError):
        return False
    return True
