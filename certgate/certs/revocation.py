"""Revocation status of one certificate from CRLs, following RFC 5280 6.3.

Supported: direct and indirect CRLs (IDP `indirectCRL` + `certificateIssuer` entries, matched
through the certificate's `cRLIssuer`), distribution-point scoping, `onlyContains*` and
`onlySomeReasons` partitions, delta CRLs (uploaded next to their base), a CRL signer other than
the certificate's issuer when it has `cRLSign` and a valid path of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Literal

from cryptography import x509

from certgate.certs.certinfo import CertInfo, NameKey, name_key, verify_signature
from certgate.certs.crlinfo import CrlInfo

ALL_REASONS = frozenset(x509.ReasonFlags) - {
    x509.ReasonFlags.unspecified,
    x509.ReasonFlags.remove_from_crl,
}


class Status(Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class CrlSource:
    """What revocation checking reads: CRLs by issuer name (operator-uploaded and fetched).

    `generation` changes whenever the usable CRLs change; cached verdicts depend on it."""

    @property
    def generation(self) -> object:
        return 0

    def candidates(self, issuer_key: NameKey) -> Sequence[CrlInfo]:
        raise NotImplementedError


SignerCheck = Callable[[CertInfo], bool]
"""Whether a certificate other than the path issuer is a valid CRL signer (has its own path)."""
SignerLookup = Callable[[NameKey], Sequence[CertInfo]]
"""Known certificates with a given subject: candidate CRL signers."""
KeysOf = Callable[[CertInfo], Sequence[object]]
"""A certificate's public key(s): one, or one per issuer when DSA parameters are inherited."""


def _dp_names(
    names: Sequence[x509.GeneralName] | None,
    relative: x509.RelativeDistinguishedName | None,
    base: x509.Name,
) -> list[object]:
    if names:
        return [_general_key(g) for g in names]
    if relative is not None:
        return [("dn", name_key(x509.Name([*base.rdns, relative])))]
    return []


def _general_key(general: x509.GeneralName) -> object:
    if isinstance(general, x509.DirectoryName):
        return ("dn", name_key(general.value))
    return (type(general).__name__, general.value)


def _scope(
    crl: CrlInfo, cert: CertInfo, dp: x509.DistributionPoint | None
) -> frozenset[x509.ReasonFlags] | None:
    """The reasons `crl` can answer for `cert` through `dp`, or None if it is out of scope."""
    if dp is not None and dp.crl_issuer:
        issuers = {_general_key(g) for g in dp.crl_issuer}
        if ("dn", crl.issuer_key) not in issuers:
            return None
        if not crl.indirect and crl.issuer_key != cert.issuer_key:
            return None
    elif crl.issuer_key != cert.issuer_key:
        return None
    reasons = ALL_REASONS
    if dp is not None and dp.reasons:
        reasons = frozenset(dp.reasons)
    idp = crl.idp
    if idp is None:
        return reasons
    if idp.only_contains_attribute_certs:
        return None
    if idp.only_contains_user_certs and cert.is_ca:
        return None
    if idp.only_contains_ca_certs and not cert.is_ca:
        return None
    idp_names = _dp_names(idp.full_name, idp.relative_name, crl.crl.issuer)
    if idp_names:
        if dp is None:
            return None
        crl_issuer_name = cert.cert.issuer
        if dp.crl_issuer:
            dn = [g.value for g in dp.crl_issuer if isinstance(g, x509.DirectoryName)]
            crl_issuer_name = dn[0] if dn else crl_issuer_name
        wanted = _dp_names(dp.full_name, dp.relative_name, crl_issuer_name)
        if not wanted and dp.crl_issuer:
            wanted = [_general_key(g) for g in dp.crl_issuer]
        if not set(idp_names) & set(wanted):
            return None
    if idp.only_some_reasons:
        reasons = reasons & frozenset(idp.only_some_reasons)
    return reasons


class Checker:
    """One certificate's status; `signer_ok` validates CRL signers other than the issuer."""

    def __init__(
        self,
        source: CrlSource,
        at: dt.datetime,
        signer_ok: SignerCheck,
        lookup: SignerLookup,
        keys: KeysOf,
    ):
        self.source = source
        self.at = at
        self.signer_ok = signer_ok
        self.lookup = lookup
        self.keys = keys
        self.notes: list[str] = []

    def _signature_ok(self, crl: CrlInfo, signer: CertInfo) -> bool:
        return any(
            verify_signature(k, crl.crl.signature, crl.crl.tbs_certlist_bytes, crl.crl)
            for k in self.keys(signer)
        )

    def _usable(self, crl: CrlInfo) -> bool:
        crl.entries()
        if crl.problem:
            self.notes.append(crl.problem)
            return False
        if crl.this_update > self.at:
            self.notes.append("CRL thisUpdate is in the future")
            return False
        if crl.next_update is not None and crl.next_update < self.at:
            self.notes.append("CRL is stale (nextUpdate has passed)")
            return False
        return True

    def _signed_by(self, crl: CrlInfo, issuer: CertInfo) -> CertInfo | None:
        """The certificate that signed `crl`: the issuer, or another known one named like the CRL
        issuer with cRLSign and a valid path of its own."""
        others = [c for c in self.lookup(crl.issuer_key) if c != issuer]
        for candidate in (issuer, *others):
            if candidate.subject_key != crl.issuer_key:
                continue
            ku = candidate.key_usage
            if ku is not None and not ku.crl_sign:
                self.notes.append("CRL signer lacks the cRLSign key usage")
                continue
            if not self._signature_ok(crl, candidate):
                continue
            if candidate is issuer or self.signer_ok(candidate):
                return candidate
        self.notes.append("no valid signer for the CRL")
        return None

    def _delta(
        self, base: CrlInfo, cert: CertInfo, dp, signer: CertInfo
    ) -> CrlInfo | Literal[False] | None:
        """The newest usable delta CRL for `base` (False if one exists but is unusable)."""
        best: CrlInfo | None = None
        for delta in self.source.candidates(base.issuer_key):
            if delta.base_number is None or base.number is None or delta.base_number > base.number:
                continue
            if (delta.idp is None) != (base.idp is None) or _scope(delta, cert, dp) is None:
                continue
            if not self._signature_ok(delta, signer):
                continue
            if not self._usable(delta):
                return False
            if best is None or (delta.number or 0) > (best.number or 0):
                best = delta
        return best

    def status(self, cert: CertInfo, issuer: CertInfo) -> Status:
        points: list[x509.DistributionPoint | None] = list(cert.cdp) if cert.cdp else [None]
        covered: frozenset[x509.ReasonFlags] = frozenset()
        for dp in points:
            issuer_keys = [cert.issuer_key]
            if dp is not None and dp.crl_issuer:
                issuer_keys = [
                    name_key(g.value) for g in dp.crl_issuer if isinstance(g, x509.DirectoryName)
                ]
            for issuer_key in issuer_keys:
                for crl in self.source.candidates(issuer_key):
                    if crl.is_delta:
                        continue
                    reasons = _scope(crl, cert, dp)
                    if reasons is None or reasons <= covered or not self._usable(crl):
                        continue
                    signer = self._signed_by(crl, issuer)
                    if signer is None:
                        continue
                    delta = self._delta(crl, cert, dp, signer)
                    if delta is False:
                        continue
                    key = (cert.issuer_key, cert.cert.serial_number)
                    entry = delta.entries().get(key) if delta else None
                    if entry is None:
                        entry = crl.entries().get(key)
                    if entry is not None and entry.reason != x509.ReasonFlags.remove_from_crl:
                        return Status.REVOKED
                    covered |= reasons
                    if covered >= ALL_REASONS:
                        return Status.GOOD
        return Status.UNKNOWN
