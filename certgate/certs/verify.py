"""Client-certificate verification: OpenSSL builds and checks the path, certgate adds revocation.

Why OpenSSL: APIM's `Verify()` is .NET's `X509Chain`, which on Linux builds and checks paths with
OpenSSL's `X509_verify_cert` at default flags (no X509_STRICT, no purpose). Running the same
function (pyOpenSSL's `X509StoreContext`) makes certgate's verdict agree with `openssl verify` by
construction: signatures, validity periods, basicConstraints and pathLen, keyUsage keyCertSign on
issuers, name constraints, unknown critical extensions, alternative chains; and no web-PKI
profile rules (a v1 certificate from `openssl x509 -req` without key identifiers is fine).
tests/certs/test_conformance.py measures the agreement with the `openssl verify` CLI.

certgate adds, on the path OpenSSL returns: the depth limit (`Limits`), the configured
extendedKeyUsage rule and revocation through CRLs (revocation.py: RFC 5280 6.3 with indirect and
delta CRLs, uploaded or fetched from distribution points, checked only where a CRL is expected or
always in strict mode), which OpenSSL's own CRL check does not do the way the docs promise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import threading
import time
import warnings
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import crypto

from certgate.certs.certinfo import CertInfo, NameKey, cached_der
from certgate.certs.revocation import Checker, CrlSource, Status
from certgate.limits import DEFAULT_LIMITS, Limits

NOT_FOUND = "ClientCertificateNotFound"
NOT_TRUSTED = "ClientCertificateNotTrusted"
REVOKED = "ClientCertificateRevoked"
EXPIRED = "ClientCertificateExpired"
NOT_YET_VALID = "ClientCertificateNotYetValid"

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
_ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE
# X509_V_FLAG_NO_CHECK_TIME: validate-not-before / validate-not-after switched off.
_NO_CHECK_TIME = 0x200000
# X509_V_ERR_* codes that map to a validate-client-certificate reason of their own.
_OPENSSL_REASONS = {9: NOT_YET_VALID, 10: EXPIRED}


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """`ok`, and when not ok a validate-client-certificate reason plus a human `detail`."""

    ok: bool
    reason: str = ""
    detail: str = ""
    path: tuple[x509.Certificate, ...] = ()
    valid_until: float = float("inf")


def _index(certs: Iterable[CertInfo]) -> dict[NameKey, list[CertInfo]]:
    index: dict[NameKey, list[CertInfo]] = {}
    for info in certs:
        bucket = index.setdefault(info.subject_key, [])
        if info not in bucket:
            bucket.append(info)
    return index


_system_lock = threading.Lock()
_system_roots: tuple[CertInfo, ...] | None = None


def system_roots() -> tuple[CertInfo, ...]:
    """The operating system's trust store (OpenSSL's default CA file), loaded once per process."""
    global _system_roots
    with _system_lock:
        if _system_roots is None:
            paths = ssl.get_default_verify_paths()
            found: list[CertInfo] = []
            for candidate in (paths.cafile, paths.openssl_cafile):
                if candidate and Path(candidate).is_file():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # a few roots have odd serials
                        try:
                            pem = Path(candidate).read_bytes()
                            found = [CertInfo(c) for c in x509.load_pem_x509_certificates(pem)]
                        except ValueError:
                            continue
                    break
            _system_roots = tuple(found)
        return _system_roots


def _info(cert: x509.Certificate | CertInfo) -> CertInfo:
    return cert if isinstance(cert, CertInfo) else CertInfo(cert)


def _describe(der: bytes) -> str:
    try:
        return cached_der(der).describe()
    except ValueError:
        return "a certificate that cannot be parsed"


class TrustStore:
    """Trust anchors (Root store, system roots) and intermediates (CertificateAuthority store).

    `extended_key_usages`: EKU OIDs a certificate may carry to be accepted (anyExtendedKeyUsage
    always counts); empty, the default, = EKU not checked, as .NET's bare `Verify()` in APIM.
    `require_revocation_information`: .NET's strict rule, every non-root certificate needs a CRL.
    The OpenSSL stores (one checking times, one for the switched-off time checks) are built once.
    """

    __slots__ = (
        "_anchor_list",
        "_lock",
        "_stores",
        "anchor_ders",
        "anchors",
        "by_der",
        "extended_key_usages",
        "fingerprint",
        "intermediate_x509s",
        "intermediates",
        "require_revocation_information",
        "use_system_roots",
    )

    def __init__(
        self,
        roots: Iterable[x509.Certificate | CertInfo] = (),
        intermediates: Iterable[x509.Certificate | CertInfo] = (),
        *,
        use_system_roots: bool = True,
        require_revocation_information: bool = False,
        extended_key_usages: Iterable[x509.ObjectIdentifier] = (),
    ):
        system = system_roots() if use_system_roots else ()
        anchors = list(dict.fromkeys([*(_info(c) for c in roots), *system]))
        self.anchors = _index(anchors)
        self.anchor_ders = frozenset(a.der for a in anchors)
        self.intermediates = _index(_info(c) for c in intermediates)
        known = [c for bucket in self.intermediates.values() for c in bucket]
        self.intermediate_x509s = [c.openssl for c in known if c.openssl is not None]
        self.by_der = {c.der: c for c in (*known, *anchors)}
        self.use_system_roots = use_system_roots
        self.require_revocation_information = require_revocation_information
        self.extended_key_usages = frozenset(extended_key_usages)
        self._stores: dict[int, crypto.X509Store] = {}
        self._anchor_list = anchors
        self._lock = threading.Lock()
        digest = hashlib.sha256()
        for info in sorted({*anchors, *known}, key=lambda c: c.fingerprint):
            digest.update(info.fingerprint)
        digest.update(
            repr(
                (
                    require_revocation_information,
                    sorted(o.dotted_string for o in self.extended_key_usages),
                )
            ).encode()
        )
        self.fingerprint = digest.digest()

    def _store(self, flags: int) -> crypto.X509Store:
        """The anchors as an OpenSSL store with `flags`, built on first use (callers hold _lock)."""
        store = self._stores.get(flags)
        if store is None:
            store = self._stores[flags] = crypto.X509Store()
            for anchor in self._anchor_list:
                if anchor.openssl is not None:
                    store.add_cert(anchor.openssl)
            store.set_flags(flags)
        return store

    def openssl_path(
        self, leaf: CertInfo, untrusted: Sequence[crypto.X509], at: dt.datetime, check_time: bool
    ) -> list[bytes] | tuple[str, str]:
        """`X509_verify_cert` at `at`: the path's DER certificates (leaf first), or the failure."""
        if leaf.openssl is None:
            return NOT_TRUSTED, f"{leaf.describe()} cannot be parsed by OpenSSL"
        with self._lock:  # the verification time is a setting of the shared store
            store = self._store(0 if check_time else _NO_CHECK_TIME)
            store.set_time(at)
            context = crypto.X509StoreContext(store, leaf.openssl, untrusted)
            try:
                chain = context.get_verified_chain()
            except crypto.X509StoreContextError as error:
                code, depth, message = error.errors
                failing = crypto.dump_certificate(crypto.FILETYPE_ASN1, error.certificate)
                detail = f"{message} at depth {depth} ({_describe(failing)})"
                return _OPENSSL_REASONS.get(code, NOT_TRUSTED), detail
        return [crypto.dump_certificate(crypto.FILETYPE_ASN1, c) for c in chain]


class _NoCrls(CrlSource):
    def candidates(self, issuer_key: NameKey) -> Sequence:
        return ()


@dataclass(frozen=True)
class _Run:
    """One verification's inputs, shared with the nested validation of CRL signers."""

    at: dt.datetime
    check_revocation: bool
    check_not_before: bool
    check_not_after: bool
    max_depth: int
    pool: dict[NameKey, list[CertInfo]]
    untrusted: list[crypto.X509]
    presented: dict[bytes, CertInfo]  # by DER: the leaf and the chain the client sent


class Verifier:
    """Checks client-certificate chains against one TrustStore and CrlSource.

    Immutable per Snapshot: a new CA or CRL set means a new Verifier (or a new CRL generation),
    which is part of every cache key.
    """

    __slots__ = ("_shared", "crls", "limits", "trust")

    def __init__(
        self, trust: TrustStore, crls: CrlSource | None = None, *, limits: Limits = DEFAULT_LIMITS
    ):
        self.trust = trust
        self.crls = crls if crls is not None else _NoCrls()
        self.limits = limits
        self._shared: dict = {}

    async def prefetch(
        self, leaf: x509.Certificate | CertInfo, chain: Sequence[x509.Certificate | CertInfo] = ()
    ) -> None:
        """Downloads the CRLs `verify` may need for this client; the gateway awaits it before
        running the policy pipeline. Only for a path that reaches a trust anchor (time and
        revocation aside): the handshake is unauthenticated, and an untrusted certificate's
        distribution points are attacker-chosen URLs."""
        prefetch = getattr(self.crls, "prefetch", None)
        if prefetch is None:
            return
        found = self.verify(
            leaf, chain, check_revocation=False, check_not_before=False, check_not_after=False
        )
        if found.ok:
            await prefetch(found.path[:-1])

    def revision(self) -> tuple[object, object]:
        """What cached results depend on: the trust store's content and the CRL generation.

        A method, not a property: `X509Certificate2.Verify()` reads it on every request."""
        return (self.trust.fingerprint, self.crls.generation)

    def verify(
        self,
        leaf: x509.Certificate | CertInfo,
        presented_chain: Sequence[x509.Certificate | CertInfo] = (),
        *,
        at: dt.datetime | None = None,
        check_revocation: bool = True,
        check_not_before: bool = True,
        check_not_after: bool = True,
        max_depth: int | None = None,
        cache: MutableMapping | None = None,
    ) -> VerificationResult:
        """Whether `leaf` chains to a trust anchor at `at` (now by default); never does I/O."""
        leaf_info = _info(leaf)
        chain_infos = [_info(c) for c in presented_chain]
        key = None
        if at is None and max_depth is None:
            key = (
                leaf_info.fingerprint,
                tuple(c.fingerprint for c in chain_infos),
                check_revocation,
                check_not_before,
                check_not_after,
                self.revision(),
            )
            hit = (cache.get(key) if cache is not None else None) or self._shared.get(key)
            if hit is not None and hit.valid_until > time.time():
                if cache is not None:
                    cache[key] = hit
                return hit
        pool = _index(chain_infos)
        for name, certs in self.trust.intermediates.items():
            pool.setdefault(name, []).extend(c for c in certs if c not in pool.get(name, ()))
        run = _Run(
            (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC),
            check_revocation,
            check_not_before,
            check_not_after,
            self.limits.max_client_chain_intermediates if max_depth is None else max_depth,
            pool,
            [
                *(c.openssl for c in chain_infos if c.openssl is not None),
                *self.trust.intermediate_x509s,
            ],
            {c.der: c for c in (leaf_info, *chain_infos)},
        )
        result = self._result(self._validate(leaf_info, run))
        if key is not None:
            if cache is not None:
                cache[key] = result
            self._shared[key] = result
            if len(self._shared) > self.limits.verification_cache_entries:
                self._shared.pop(next(iter(self._shared)))
        return result

    def _result(self, outcome: list[CertInfo] | tuple[str, str]) -> VerificationResult:
        """The verdict, reusable until its TTL passes or a certificate of its path expires."""
        if isinstance(outcome, tuple):
            reason, detail = outcome
            expiry = time.time() + self.limits.verification_failure_ttl
            return VerificationResult(False, reason, detail, valid_until=expiry)
        valid_until = min(c.not_after for c in outcome).timestamp()
        return VerificationResult(
            True,
            path=tuple(c.cert for c in outcome),
            valid_until=min(valid_until, time.time() + self.limits.verification_success_ttl),
        )

    def _validate(
        self,
        leaf: CertInfo,
        run: _Run,
        nesting: int = 0,
        validating: frozenset[bytes] = frozenset(),
    ) -> list[CertInfo] | tuple[str, str]:
        """The path (leaf first, anchor last) when `leaf` passes every check, else the failure."""
        check_time = run.check_not_before and run.check_not_after
        found = self.trust.openssl_path(leaf, run.untrusted, run.at, check_time)
        if isinstance(found, tuple):
            return found
        known = self.trust.by_der
        path = [run.presented.get(der) or known.get(der) or cached_der(der) for der in found]
        if len(path) - 2 > run.max_depth:
            return NOT_TRUSTED, f"the chain has more than {run.max_depth} intermediates"
        for cert in path:
            problem = self._time_problem(cert, run) if not check_time else None
            if problem is None and nesting == 0 and not self._eku_ok(cert):
                problem = NOT_TRUSTED, f"{cert.describe()} is not valid for client authentication"
            if problem is not None:
                return problem
        if run.check_revocation:
            problem = self._revocation(path, run, nesting, validating)
            if problem is not None:
                return problem
        return path

    @staticmethod
    def _time_problem(cert: CertInfo, run: _Run) -> tuple[str, str] | None:
        """The validity check left on when one of validate-not-before/after is switched off."""
        at = run.at.replace(microsecond=0)
        if run.check_not_before and at < cert.not_before:
            return NOT_YET_VALID, f"{cert.describe()} is not valid before {cert.not_before}"
        if run.check_not_after and at > cert.not_after:
            return EXPIRED, f"{cert.describe()} expired at {cert.not_after}"
        return None

    def _eku_ok(self, cert: CertInfo) -> bool:
        wanted = self.trust.extended_key_usages
        if not wanted or cert.eku is None:
            return True
        usages = set(cert.eku)
        return _ANY_EKU in usages or bool(usages & wanted)

    # -- revocation ----------------------------------------------------------------------------

    def _revocation(
        self, path: list[CertInfo], run: _Run, nesting: int, validating: frozenset[bytes]
    ) -> tuple[str, str] | None:
        checker = Checker(
            self.crls,
            run.at,
            lambda signer: self._signer_ok(signer, run, nesting, validating),
            lambda name: [*run.pool.get(name, ()), *self.trust.anchors.get(name, ())],
            lambda cert: [] if cert.public_key is None else [cert.public_key],
        )
        strict = self.trust.require_revocation_information
        for index in range(len(path) - 1):
            cert, issuer = path[index], path[index + 1]
            if not strict and cert.cdp is None and not self.crls.candidates(cert.issuer_key):
                continue
            status = checker.status(cert, issuer)
            if status is Status.REVOKED:
                return REVOKED, f"{cert.describe()} is revoked"
            if status is Status.UNKNOWN:
                notes = "; ".join(dict.fromkeys(checker.notes)) or "no CRL"
                return NOT_TRUSTED, f"revocation status of {cert.describe()} is unknown ({notes})"
        return None

    def _signer_ok(
        self, signer: CertInfo, run: _Run, nesting: int, validating: frozenset[bytes]
    ) -> bool:
        """A CRL signer other than the certificate's issuer needs a valid path of its own."""
        if signer.der in self.trust.anchor_ders or signer.fingerprint in validating:
            return True
        if nesting >= self.limits.max_crl_signer_nesting:
            return False
        outcome = self._validate(signer, run, nesting + 1, validating | {signer.fingerprint})
        return not isinstance(outcome, tuple)
