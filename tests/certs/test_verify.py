"""Chain building and checks: what a client presenting these certificates would see."""

from __future__ import annotations

import base64
import datetime as dt
import time

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certgate.certs.crl import CrlStore
from certgate.certs.crlinfo import CrlInfo
from certgate.certs.trust import build_verifier
from certgate.certs.verify import (
    EXPIRED,
    NOT_TRUSTED,
    NOT_YET_VALID,
    REVOKED,
    TrustStore,
    Verifier,
)
from certgate.limits import DEFAULT_LIMITS, Limits
from tests import pki


def _verifier(roots, intermediates=(), crls=(), limits=DEFAULT_LIMITS, **options) -> Verifier:
    trust = TrustStore(
        [r.cert for r in roots],
        [i.cert for i in intermediates],
        use_system_roots=False,
        **options,
    )
    return Verifier(trust, CrlStore([CrlInfo(c) for c in crls]), limits=limits)


def test_chain_through_presented_or_stored_intermediate() -> None:
    root = pki.ca("Root")
    inter = root.issue("Issuing CA", ca=True)
    leaf = inter.issue("client")
    assert _verifier([root]).verify(leaf.cert, [inter.cert]).ok
    assert _verifier([root], [inter]).verify(leaf.cert).ok
    missing = _verifier([root]).verify(leaf.cert)
    assert (missing.ok, missing.reason) == (False, NOT_TRUSTED)


def test_expired_and_not_yet_valid_client_certificates() -> None:
    root = pki.ca("Root")
    expired = root.issue(
        "old", not_before=pki.NOW - dt.timedelta(days=30), not_after=pki.NOW - dt.timedelta(days=1)
    )
    future = root.issue("new", not_before=pki.NOW + dt.timedelta(days=1))
    verifier = _verifier([root])
    assert verifier.verify(expired.cert).reason == EXPIRED
    assert verifier.verify(future.cert).reason == NOT_YET_VALID
    assert verifier.verify(expired.cert, check_not_after=False).ok


def test_unknown_ca_is_not_trusted() -> None:
    root, other = pki.ca("Root"), pki.ca("Other Root")
    result = _verifier([root]).verify(other.issue("client").cert)
    assert (result.ok, result.reason) == (False, NOT_TRUSTED)
    assert "unable to get local issuer certificate" in result.detail


def test_self_signed_client_uploaded_as_root_is_trusted() -> None:
    own = pki.issue("self-signed client")
    assert _verifier([own]).verify(own.cert).ok
    assert not _verifier([pki.ca()]).verify(own.cert).ok


def test_revoked_by_uploaded_crl_fails_verify_but_not_verify_no_revocation() -> None:
    root = pki.ca("Root")
    good, bad = root.issue("good"), root.issue("bad")
    verifier = _verifier([root], crls=[pki.crl(root, [bad.cert.serial_number])])
    assert verifier.verify(good.cert).ok
    revoked = verifier.verify(bad.cert)
    assert (revoked.ok, revoked.reason) == (False, REVOKED)
    assert verifier.verify(bad.cert, check_revocation=False).ok


def test_crl_signed_by_the_wrong_key_leaves_status_unknown() -> None:
    root = pki.ca("Root")
    leaf = root.issue("client")
    forged = pki.crl(root, [], signing_key=pki.new_key())
    result = _verifier([root], crls=[forged]).verify(leaf.cert)
    assert (result.ok, result.reason) == (False, NOT_TRUSTED)
    assert "revocation status" in result.detail and "no valid signer" in result.detail
    assert _verifier([root], crls=[forged]).verify(leaf.cert, check_revocation=False).ok


def test_stale_crl_leaves_status_unknown() -> None:
    root = pki.ca("Root")
    leaf = root.issue("client")
    stale = pki.crl(root, next_update=pki.NOW - dt.timedelta(minutes=1))
    result = _verifier([root], crls=[stale]).verify(leaf.cert)
    assert not result.ok and "stale" in result.detail


def test_distribution_point_without_crl_is_unknown_and_strict_mode_needs_crls() -> None:
    root = pki.ca("Root")
    with_cdp = root.issue("client", crl_url="http://127.0.0.1:9/root.crl")
    plain = root.issue("plain")
    assert not _verifier([root]).verify(with_cdp.cert).ok
    assert _verifier([root]).verify(with_cdp.cert, check_revocation=False).ok
    assert _verifier([root]).verify(plain.cert).ok
    strict = _verifier([root], require_revocation_information=True)
    assert not strict.verify(plain.cert).ok
    assert (
        _verifier([root], crls=[pki.crl(root)], require_revocation_information=True)
        .verify(plain.cert)
        .ok
    )


def test_cross_signed_intermediate_finds_the_valid_path() -> None:
    old_root, new_root = pki.ca("Old Root"), pki.ca("New Root")
    key = pki.new_key()
    expired_path = old_root.issue(
        "Issuing CA", ca=True, key=key, not_after=pki.NOW - dt.timedelta(days=1)
    )
    valid_path = new_root.issue("Issuing CA", ca=True, key=key)
    leaf = valid_path.issue("client")
    verifier = _verifier([old_root, new_root])
    result = verifier.verify(leaf.cert, [expired_path.cert, valid_path.cert])
    assert result.ok
    assert result.path[-1] == new_root.cert
    only_expired = verifier.verify(leaf.cert, [expired_path.cert])
    assert only_expired.reason == EXPIRED


def test_path_length_constraint() -> None:
    strict_root = pki.ca("Root", path_length=0)
    inter = strict_root.issue("Issuing CA", ca=True)
    leaf = inter.issue("client")
    result = _verifier([strict_root]).verify(leaf.cert, [inter.cert])
    assert not result.ok and "path length constraint exceeded" in result.detail
    root = pki.ca("Root", path_length=1)
    inter = root.issue("Issuing CA", ca=True)
    assert _verifier([root]).verify(inter.issue("client").cert, [inter.cert]).ok


def test_name_constraints_on_dns_and_email() -> None:
    root = pki.ca("Root")
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.com"), x509.RFC822Name("example.com")],
        excluded_subtrees=[x509.DNSName("bad.example.com")],
    )
    inter = root.issue("Constrained CA", ca=True, name_constraints=constraints)
    verifier = _verifier([root], [inter])
    assert verifier.verify(inter.issue("a", dns=["a.example.com"]).cert).ok
    assert verifier.verify(inter.issue("m", emails=["me@example.com"]).cert).ok
    outside = verifier.verify(inter.issue("e", dns=["evil.com"]).cert)
    assert not outside.ok and "permitted subtree violation" in outside.detail
    assert not verifier.verify(inter.issue("x", dns=["x.bad.example.com"]).cert).ok
    assert not verifier.verify(inter.issue("m", emails=["me@evil.com"]).cert).ok


def test_extended_key_usage_is_checked_only_when_configured() -> None:
    root = pki.ca("Root")
    server_only = root.issue("srv", eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    assert _verifier([root]).verify(server_only.cert).ok  # APIM's Verify() checks no EKU
    client_auth = (ExtendedKeyUsageOID.CLIENT_AUTH,)
    result = _verifier([root], extended_key_usages=client_auth).verify(server_only.cert)
    assert not result.ok and "client authentication" in result.detail
    any_usage = root.issue("any", eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    assert _verifier([root], extended_key_usages=client_auth).verify(any_usage.cert).ok


def test_many_same_named_issuers_end_quickly() -> None:
    root = pki.ca("Root")
    decoys = [pki.ca("Issuing CA") for _ in range(40)]
    inter = root.issue("Issuing CA", ca=True)
    leaf = inter.issue("client")
    crowded = [*(d.cert for d in decoys), inter.cert]

    def cost(chain: list) -> float:
        """Best of three fresh verifications (no cache), in seconds."""
        best = float("inf")
        for _ in range(3):
            verifier = _verifier([root])
            started = time.perf_counter()
            assert verifier.verify(leaf.cert, chain).ok
            best = min(best, time.perf_counter() - started)
        return best

    # Each decoy costs one failed signature check at most: linear, never a search of all paths.
    assert cost(crowded) < 10 * len(crowded) * cost([inter.cert])


def test_results_are_cached_per_connection_until_crls_change() -> None:
    root = pki.ca("Root")
    leaf = root.issue("client")
    cache: dict = {}
    verifier = _verifier([root])
    first = verifier.verify(leaf.cert, cache=cache)
    assert verifier.verify(leaf.cert, cache=cache) is first
    revoking = _verifier([root], crls=[pki.crl(root, [leaf.cert.serial_number])])
    assert revoking.verify(leaf.cert, cache=cache).reason == REVOKED


def test_client_certificate_without_any_extension_is_trusted() -> None:
    """No key identifiers, no basicConstraints, no EKU: what `openssl x509 -req -CA` makes
    (issue 13; tests/e2e/test_openssl_made_certificates.py runs the real v1 one)."""
    root = pki.ca("Root")
    leaf = root.issue("bare client", bare=True)
    assert len(leaf.cert.extensions) == 0
    assert _verifier([root]).verify(leaf.cert).ok


def test_chain_longer_than_the_intermediate_limit_is_refused() -> None:
    root = pki.ca("Root")
    upper = root.issue("Upper CA", ca=True)
    lower = upper.issue("Lower CA", ca=True)
    leaf = lower.issue("client")
    chain = [lower.cert, upper.cert]
    assert (
        _verifier([root], limits=Limits(max_client_chain_intermediates=2))
        .verify(leaf.cert, chain)
        .ok
    )
    short = _verifier([root], limits=Limits(max_client_chain_intermediates=1))
    refused = short.verify(leaf.cert, chain)
    assert (refused.ok, refused.reason) == (False, NOT_TRUSTED)
    assert "more than 1 intermediates" in refused.detail
    service = {
        "certificates": [
            {"storeName": "Root", "encodedCertificate": base64.b64encode(root.der).decode()}
        ],
        "clientCertificateTrust": {"useSystemRoots": False},
    }
    limited = build_verifier(service, limits=Limits(max_client_chain_intermediates=1))
    assert not limited.verify(leaf.cert, chain).ok


def test_shared_verdicts_are_bounded_in_number_and_time() -> None:
    root = pki.ca("Root")
    first, second = root.issue("first").cert, root.issue("second").cert
    stranger = pki.ca("Other").issue("stranger").cert
    verifier = _verifier([root])
    assert verifier.verify(first) is verifier.verify(first)  # reused across connections
    one_entry = _verifier([root], limits=Limits(verification_cache_entries=1))
    kept = one_entry.verify(first)
    one_entry.verify(second)
    assert one_entry.verify(first) is not kept  # evicted by the second client
    no_reuse = _verifier(
        [root], limits=Limits(verification_success_ttl=0.0, verification_failure_ttl=0.0)
    )
    assert no_reuse.verify(first) is not no_reuse.verify(first)
    assert no_reuse.verify(stranger) is not no_reuse.verify(stranger)
    failure = verifier.verify(stranger)
    assert not failure.ok and verifier.verify(stranger) is failure


def test_crl_signer_other_than_the_issuer_is_validated_within_the_nesting_limit() -> None:
    root = pki.ca("Root")
    leaf = root.issue("client")
    signer_key = pki.new_key()
    signer = root.issue("unused", subject=root.cert.subject, key=signer_key, ca=True)
    revoking = pki.crl(root, [leaf.cert.serial_number], signing_key=signer_key)
    nested = _verifier([root], [signer], crls=[revoking])
    assert nested.verify(leaf.cert).reason == REVOKED
    flat = _verifier([root], [signer], crls=[revoking], limits=Limits(max_crl_signer_nesting=0))
    refused = flat.verify(leaf.cert)
    assert (refused.ok, refused.reason) == (False, NOT_TRUSTED)
    assert "no valid signer" in refused.detail
