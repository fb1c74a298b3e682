"""NIST PKITS through certgate's verifier: `Verify()` (chain + CRLs, .NET's strict revocation
rule) and `VerifyNoRevocation()` (chain only), beside `openssl verify` (the oracle: with
`-crl_check_all` and every CRL of the case for `Verify()`, without CRLs for the other) and each
case's expected outcome. Policy inputs (`params`) are not applicable: APIM has none."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509

from certgate.certs.certinfo import CertInfo, load_der
from certgate.certs.crl import CrlStore
from certgate.certs.crlinfo import CrlInfo
from certgate.certs.verify import TrustStore, Verifier
from tests.certs import openssl_oracle

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora" / "nist-pkits"
AT = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
REVOCATION_ONLY = {"RevokedError", "InsufficientRevinfoError", "StaleRevinfoError"}


@dataclass
class Outcome:
    case: dict
    verify: bool
    verify_no_revocation: bool
    detail: str

    @property
    def section(self) -> str:
        return f"4.{int(self.case['id'][1:3])}"

    @property
    def expect_verify(self) -> bool:
        return "error" not in self.case

    @property
    def expect_no_revocation(self) -> bool:
        error = self.case.get("error")
        return error is None or error["class"] in REVOCATION_ONLY

    @property
    def agrees(self) -> bool:
        return (self.verify, self.verify_no_revocation) == (
            self.expect_verify,
            self.expect_no_revocation,
        )


@cache
def _cert(name: str) -> CertInfo | None:
    try:
        return load_der((CORPUS / "certs" / name).read_bytes())
    except ValueError:
        return None


@cache
def _crl(name: str) -> CrlInfo:
    return CrlInfo(x509.load_der_x509_crl((CORPUS / "crls" / name).read_bytes()))


def run_case(case: dict) -> Outcome:
    root = _cert("TrustAnchorRootCertificate.crt")
    leaf = _cert(case["cert"])
    others = [_cert(n) for n in case.get("other_certs", [])]
    if leaf is None or None in others:
        return Outcome(case, False, False, "a certificate cannot be parsed")
    crls = [_crl("TrustAnchorRootCRL.crl"), *(_crl(n) for n in case.get("crls", []))]
    trust = TrustStore(
        [root], use_system_roots=False, require_revocation_information=True, extended_key_usages=()
    )
    verifier = Verifier(trust, CrlStore(crls))
    full = verifier.verify(leaf, others, at=AT)
    chain_only = verifier.verify(leaf, others, at=AT, check_revocation=False)
    return Outcome(case, full.ok, chain_only.ok, full.detail or chain_only.detail)


@cache
def _der(folder: str, name: str) -> bytes:
    return (CORPUS / folder / name).read_bytes()


def questions(case: dict) -> tuple[openssl_oracle.Question, openssl_oracle.Question]:
    """`Verify()` and `VerifyNoRevocation()` of `case` as `openssl verify` questions."""
    trusted = [_der("certs", "TrustAnchorRootCertificate.crt")]
    others = [_der("certs", n) for n in case.get("other_certs", [])]
    leaf = _der("certs", case["cert"])
    crls = [_der("crls", n) for n in ["TrustAnchorRootCRL.crl", *case.get("crls", [])]]
    return (
        openssl_oracle.Question(trusted, others, leaf, crls, AT),
        openssl_oracle.Question(trusted, others, leaf, None, AT),
    )


def load_cases() -> list[dict]:
    return json.loads((CORPUS / "pkits.json").read_bytes())
