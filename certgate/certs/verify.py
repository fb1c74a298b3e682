"""Client-certificate chain building and validation over `cryptography` primitives.

Why our own path builder: pyOpenSSL's X509Store stops at the first path it finds, and
`cryptography.x509.verification` applies web-PKI leaf rules that reject valid client certificates
(no SAN, no EKU). This builder explores every candidate path (cross-signed CAs, several issuers
with one name) within a work budget and accepts the first one that passes every check:
signatures, validity periods, basicConstraints and pathLen, keyUsage, extendedKeyUsage, name
constraints, unknown critical extensions and, when asked, revocation through CRLs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import threading
import time
import warnings
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certgate.certs import nameconstraints
from certgate.certs.certinfo import CertInfo, NameKey, profile_problem, verify_signature
from certgate.certs.policies import policy_problem
from certgate.certs.revocation import Checker, CrlSource, Status

NOT_FOUND = "ClientCertificateNotFound"
NOT_TRUSTED = "ClientCertificateNotTrusted"
REVOKED = "ClientCertificateRevoked"
EXPIRED = "ClientCertificateExpired"
NOT_YET_VALID = "ClientCertificateNotYetValid"

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
_ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE
MAX_PATH_LENGTH = 16
SHARED_CACHE_SIZE = 4096
FAILURE_TTL = 60.0
SUCCESS_TTL = 300.0
_REASON_RANK = {REVOKED: 4, EXPIRED: 3, NOT_YET_VALID: 2, NOT_TRUSTED: 1}


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


def _depth(intermediates: Sequence[CertInfo]) -> int:
    """Logical chain depth: intermediates that are not self-issued (key rollover) count."""
    return sum(1 for c in intermediates if not c.self_issued)


class TrustStore:
    """Trust anchors (Root store, system roots) and intermediates (CertificateAuthority store).

    `extended_key_usages`: EKU OIDs a certificate may carry to be accepted (clientAuth by default;
    anyExtendedKeyUsage always counts; empty = EKU not checked, as .NET's bare `Verify()`).
    `require_revocation_information`: .NET's strict rule, every non-root certificate needs a CRL.
    """

    __slots__ = (
        "anchor_ders",
        "anchors",
        "extended_key_usages",
        "fingerprint",
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
        extended_key_usages: Iterable[x509.ObjectIdentifier] = (CLIENT_AUTH,),
    ):
        anchors = [_info(c) for c in roots]
        if use_system_roots:
            anchors.extend(system_roots())
        self.anchors = _index(anchors)
        self.anchor_ders = frozenset(a.der for a in anchors)
        self.intermediates = _index(_info(c) for c in intermediates)
        self.use_system_roots = use_system_roots
        self.require_revocation_information = require_revocation_information
        self.extended_key_usages = frozenset(extended_key_usages)
        digest = hashlib.sha256()
        for info in sorted(
            {*anchors, *(c for b in self.intermediates.values() for c in b)},
            key=lambda c: c.fingerprint,
        ):
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


class _NoCrls(CrlSource):
    def candidates(self, issuer_key: NameKey) -> Sequence:
        return ()


@dataclass
class _Search:
    """One verification's state: the certificate pool, the budget and the best failure so far."""

    pool: dict[NameKey, list[CertInfo]]
    at: dt.datetime
    check_revocation: bool
    check_not_before: bool
    check_not_after: bool
    max_depth: int
    budget: int
    signature_cache: dict[tuple[bytes, bytes], bool] = field(default_factory=dict)
    failure: tuple[str, str] = (NOT_TRUSTED, "no chain to a trusted root")
    failure_rank: int = 0
    depth: int = 0
    validating: frozenset[bytes] = frozenset()

    def fail(self, reason: str, detail: str, *, complete: bool = True) -> None:
        """Remembers the most telling failure: complete paths beat dead ends, then by reason."""
        rank = _REASON_RANK[reason] + (10 if complete else 0)
        if rank > self.failure_rank:
            self.failure, self.failure_rank = (reason, detail), rank


class Verifier:
    """Builds and checks client-certificate chains against one TrustStore and CrlStore.

    Immutable per Snapshot: a new CA or CRL set means a new Verifier (or a new CRL generation),
    which is part of every cache key.
    """

    __slots__ = ("_shared", "budget", "crls", "max_depth", "trust")

    def __init__(
        self,
        trust: TrustStore,
        crls: CrlSource | None = None,
        *,
        max_depth: int = 10,
        budget: int = 256,
    ):
        self.trust = trust
        self.crls = crls if crls is not None else _NoCrls()
        self.max_depth = max_depth
        self.budget = budget
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
        result = self._verify(
            leaf_info,
            chain_infos,
            at or dt.datetime.now(dt.UTC),
            check_revocation,
            check_not_before,
            check_not_after,
            self.max_depth if max_depth is None else max_depth,
        )
        if key is not None:
            if cache is not None:
                cache[key] = result
            self._shared[key] = result
            if len(self._shared) > SHARED_CACHE_SIZE:
                self._shared.pop(next(iter(self._shared)))
        return result

    def _verify(
        self,
        leaf: CertInfo,
        chain: list[CertInfo],
        at: dt.datetime,
        check_revocation: bool,
        check_not_before: bool,
        check_not_after: bool,
        max_depth: int,
    ) -> VerificationResult:
        pool = _index([*chain])
        for name, certs in self.trust.intermediates.items():
            pool.setdefault(name, []).extend(c for c in certs if c not in pool.get(name, ()))
        search = _Search(
            pool, at, check_revocation, check_not_before, check_not_after, max_depth, self.budget
        )
        path = self._find(leaf, search)
        if path is None:
            reason, detail = search.failure
            return VerificationResult(False, reason, detail, valid_until=time.time() + FAILURE_TTL)
        valid_until = min(c.not_after for c in path).timestamp()
        return VerificationResult(
            True,
            path=tuple(c.cert for c in path),
            valid_until=min(valid_until, time.time() + SUCCESS_TTL),
        )

    # -- path building ------------------------------------------------------------------------

    def _issuers(self, cert: CertInfo, search: _Search) -> list[tuple[CertInfo, bool]]:
        anchors = [(c, True) for c in self.trust.anchors.get(cert.issuer_key, ())]
        others = [
            (c, False)
            for c in search.pool.get(cert.issuer_key, ())
            if c.der not in self.trust.anchor_ders
        ]
        candidates = anchors + others
        if cert.aki is not None:
            candidates.sort(key=lambda pair: pair[0].ski != cert.aki)
        return candidates

    def _signed(self, child: CertInfo, parent: CertInfo, search: _Search) -> bool:
        key = (parent.fingerprint, child.fingerprint)
        cached = search.signature_cache.get(key)
        if cached is None:
            search.budget -= 1
            cached = any(
                verify_signature(k, child.cert.signature, child.tbs, child.cert)
                for k in self._keys(parent, search)
            )
            search.signature_cache[key] = cached
        return cached

    def _keys(self, cert: CertInfo, search: _Search) -> list[object]:
        """`cert`'s public key; for a DSA key without parameters, one per possible issuer."""
        if cert.public_key is not None:
            return [cert.public_key]
        if not cert.inherits_parameters:
            return []
        issuers = [
            *self.trust.anchors.get(cert.issuer_key, ()),
            *search.pool.get(cert.issuer_key, ()),
        ]
        keys = (cert.key_with_inherited_parameters(i.public_key) for i in issuers)
        return [k for k in keys if k is not None]

    def _find(self, leaf: CertInfo, search: _Search) -> list[CertInfo] | None:
        if leaf.der in self.trust.anchor_ders:
            problem = self._time_problem(leaf, search)
            if problem is None:
                return [leaf]
            search.fail(*problem)
            return None
        stack: list[list[CertInfo]] = [[leaf]]
        while stack:
            if search.budget <= 0:
                search.fail(NOT_TRUSTED, "chain-building budget exhausted", complete=False)
                return None
            path = stack.pop()
            top = path[-1]
            extensions: list[list[CertInfo]] = []
            for candidate, is_anchor in self._issuers(top, search):
                if any(candidate.same_entity(p) for p in path):
                    continue
                if not self._signed(top, candidate, search):
                    search.fail(NOT_TRUSTED, f"bad signature on {top.describe()}", complete=False)
                    continue
                if is_anchor:
                    full = [*path, candidate]
                    problem = self._check(full, search)
                    if problem is None:
                        return full
                    search.fail(*problem)
                elif (
                    len(path) < MAX_PATH_LENGTH
                    and _depth([*path[1:], candidate]) <= search.max_depth
                ):
                    extensions.append([*path, candidate])
            stack.extend(reversed(extensions))
        return None

    # -- path checks ---------------------------------------------------------------------------

    def _time_problem(self, cert: CertInfo, search: _Search) -> tuple[str, str] | None:
        at = search.at.replace(microsecond=0)
        if search.check_not_before and at < cert.not_before:
            return NOT_YET_VALID, f"{cert.describe()} is not valid before {cert.not_before}"
        if search.check_not_after and at > cert.not_after:
            return EXPIRED, f"{cert.describe()} expired at {cert.not_after}"
        return None

    def _eku_ok(self, cert: CertInfo) -> bool:
        wanted = self.trust.extended_key_usages
        if not wanted or cert.eku is None:
            return True
        usages = set(cert.eku)
        return _ANY_EKU in usages or bool(usages & wanted)

    def _check(self, path: list[CertInfo], search: _Search) -> tuple[str, str] | None:
        """The first problem of a complete path (leaf first, anchor last), or None."""
        anchor_index = len(path) - 1
        for index, cert in enumerate(path):
            role = "leaf" if index == 0 else "anchor" if index == anchor_index else "intermediate"
            problem = profile_problem(cert, role)
            if problem:
                return NOT_TRUSTED, f"{cert.describe()}: {problem}"
            if search.depth == 0 and not self._eku_ok(cert):
                return NOT_TRUSTED, f"{cert.describe()} is not valid for client authentication"
            if index == 0:
                continue
            if not cert.is_ca and not (
                index == anchor_index
                and cert.basic_constraints is None
                and cert.cert.version == x509.Version.v1
            ):
                return NOT_TRUSTED, f"{cert.describe()} is not a CA"
            if index < anchor_index and cert.cert.version != x509.Version.v3:
                return NOT_TRUSTED, f"{cert.describe()} is a v1/v2 intermediate"
            if cert.key_usage is not None and not cert.key_usage.key_cert_sign:
                return NOT_TRUSTED, f"{cert.describe()} may not sign certificates (keyUsage)"
            limit = cert.basic_constraints.path_length if cert.basic_constraints else None
            if limit is not None and _depth(path[1:index]) > limit:
                return NOT_TRUSTED, f"{cert.describe()} pathLenConstraint {limit} exceeded"
            if cert.name_constraints is not None:
                for lower_index, lower in enumerate(path[:index]):
                    if lower_index and lower.self_issued:
                        continue
                    problem = nameconstraints.violation(cert.name_constraints, lower)
                    if problem:
                        return NOT_TRUSTED, problem
        problem = policy_problem(path)
        if problem:
            return NOT_TRUSTED, problem
        for cert in path:
            problem = self._time_problem(cert, search)
            if problem is not None:
                return problem
        if search.check_revocation:
            return self._revocation(path, search)
        return None

    def _revocation(self, path: list[CertInfo], search: _Search) -> tuple[str, str] | None:
        checker = Checker(
            self.crls,
            search.at,
            lambda signer: self._signer_ok(signer, search),
            lambda name: [*search.pool.get(name, ()), *self.trust.anchors.get(name, ())],
            lambda cert: self._keys(cert, search),
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

    def _signer_ok(self, signer: CertInfo, search: _Search) -> bool:
        """A CRL signer other than the certificate's issuer needs a valid path of its own."""
        if signer.der in self.trust.anchor_ders or signer.fingerprint in search.validating:
            return True
        if search.depth >= 2:
            return False
        nested = _Search(
            search.pool,
            search.at,
            search.check_revocation,
            search.check_not_before,
            search.check_not_after,
            search.max_depth,
            search.budget,
            search.signature_cache,
            depth=search.depth + 1,
            validating=search.validating | {signer.fingerprint},
        )
        return self._find(signer, nested) is not None
