"""Conformance of the verifier over x509-limbo's client-usable subset and NIST PKITS.

Each runner prints its failing cases and a closing `N passed, N failed` (run with `-s` to see them).
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import pytest

from tests.certs import limbo, pkits


def test_limbo_client_usable_subset_beats_pyca() -> None:
    if not (limbo.CORPUS / "limbo.json").exists():
        pytest.skip(f"corpus not found at {limbo.CORPUS}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = limbo.load_cases()
    assert len(cases) == 3178
    passed = failed = skipped = pyca_passed = 0
    crl_results = []
    for case in cases:
        if set(case.features) & limbo.SKIPPED_FEATURES:
            skipped += 1
            continue
        accepted, detail = limbo.certgate_accepts(case)
        pyca_passed += limbo.pyca_accepts(case) == case.expected
        if accepted == case.expected:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {case.id}: expected {case.expected}, got {accepted} ({detail})")
        if "has-crl" in case.features:
            crl_results.append(accepted == case.expected)
    print(f"limbo: {passed} passed, {failed} failed, {skipped} skipped by feature")
    print(f"pyca/cryptography on the same cases: {pyca_passed} passed")
    assert len(crl_results) == 8 and all(crl_results)
    assert passed >= pyca_passed


def test_pkits_verify_and_verify_no_revocation() -> None:
    if not (pkits.CORPUS / "pkits.json").exists():
        pytest.skip(f"corpus not found at {pkits.CORPUS}")
    per_section: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    disagreements = []
    not_applicable = 0
    for case in pkits.load_cases():
        if "params" in case:
            not_applicable += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PKITS has negative serial numbers on purpose
            outcome = pkits.run_case(case)
        per_section[outcome.section][0 if outcome.agrees else 1] += 1
        if not outcome.agrees:
            print(
                f"FAIL {case['id']} {case['name']}: Verify()={outcome.verify} "
                f"VerifyNoRevocation()={outcome.verify_no_revocation} ({outcome.detail})"
            )
            disagreements.append(case["id"])
    for section, (ok, bad) in sorted(per_section.items(), key=lambda s: int(s[0][2:])):
        print(f"PKITS {section}: {ok} passed, {bad} failed")
    print(f"PKITS: {not_applicable} cases with policy inputs (not applicable: APIM has none)")
    assert disagreements == []
