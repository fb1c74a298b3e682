"""certgate's verdict against the `openssl verify` CLI (the oracle, issue 13) on x509-limbo's
client-usable subset and every NIST PKITS case.

Gate: agreement on at least 99 % of the questions both can run (limbo and PKITS together); every
disagreement is listed with its reason in `openssl_disagreements.txt`, and a listed question that
now agrees fails too, so the list stays honest. The corpus's own expectation and
pyca/cryptography are information columns.
Run with `-s` to see the per-case lines and the figures. openssl's answers are remembered for
the same openssl build and inputs (tests/certs/openssl_oracle.py says where).
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import limbo, openssl_oracle, pkits

ALLOW_LIST = Path(__file__).with_name("openssl_disagreements.txt")
MIN_AGREEMENT = 0.99


def _require(path: Path) -> None:
    """Skips without a corpus (under CI, tests/conftest.py fails the session first); under CI a
    missing openssl CLI fails too."""
    if openssl_oracle.OPENSSL is None:
        if os.environ.get("CI"):
            pytest.fail("the openssl CLI is not installed")
        pytest.skip("the openssl CLI is not installed")
    if not path.exists():
        pytest.skip(f"corpus not found at {path}")


def _allowed(corpus: str) -> dict[str, str]:
    """`corpus:case[:column]  reason` lines of the allow-list, for one corpus."""
    allowed = {}
    for line in ALLOW_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, reason = re.split(r"\s+", line.strip(), maxsplit=1)
            if key.startswith(f"{corpus}:"):
                allowed[key] = reason
    return allowed


Row = tuple[str, bool, openssl_oracle.Answer, str]
"""(question key, certgate's verdict, openssl's answer, certgate's detail)"""


def _compare(corpus: str, rows: list[Row]) -> tuple[int, int]:
    """Prints the corpus's figures; checks its allow-list; returns (run by both, agreed)."""
    allowed = _allowed(corpus)
    ran = [row for row in rows if row[2].ran]
    disagreeing = {key for key, ours, answer, _ in ran if ours != answer.ok}
    reasons: Counter = Counter()
    for key, ours, answer, detail in rows:
        if not answer.ran:
            print(f"NOT RUN by openssl {key}: {answer.detail}; certgate says {ours}")
        elif key in disagreeing:
            reasons[allowed.get(key, "NOT LISTED").split(":")[0]] += 1
            print(
                f"DISAGREE {key}: certgate {ours} ({detail}), openssl {answer.ok} ({answer.detail})"
            )
    agreed = len(ran) - len(disagreeing)
    print(f"{corpus} vs openssl: {len(rows)} questions, {len(ran)} run by both, {agreed} agree")
    for reason, count in reasons.most_common():
        print(f"  {count} x {reason}")
    unlisted = sorted(disagreeing - allowed.keys())
    stale = sorted(allowed.keys() - disagreeing)
    assert unlisted == [], f"disagreements not in {ALLOW_LIST.name}: {unlisted}"
    assert stale == [], f"listed in {ALLOW_LIST.name} but not disagreeing: {stale}"
    return len(ran), agreed


def _limbo_rows(memo: dict) -> list[Row]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # limbo has non-positive serial numbers on purpose
        cases = limbo.load_cases()
    assert len(cases) == 3178
    answers = openssl_oracle.ask_all([limbo.question(case) for case in cases], memo)
    rows, expected_agree, pyca_openssl, pyca_expected = [], 0, 0, 0
    for case, answer in zip(cases, answers, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, detail = limbo.certgate_accepts(case)
            pyca = limbo.pyca_accepts(case)
        rows.append((f"limbo:{case.id}", ours, answer, detail))
        expected_agree += ours == case.expected
        pyca_openssl += answer.ran and pyca == answer.ok
        pyca_expected += pyca == case.expected
    print(f"limbo's expectation: certgate agrees on {expected_agree} of {len(cases)}")
    print(f"pyca/cryptography: agrees with openssl on {pyca_openssl}, limbo on {pyca_expected}")
    return rows


def _pkits_rows(memo: dict) -> list[Row]:
    cases = pkits.load_cases()
    assert len(cases) == 246
    questions = [q for case in cases for q in pkits.questions(case)]
    answers = openssl_oracle.ask_all(questions, memo)
    rows, expected_agree = [], 0
    for index, case in enumerate(cases):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PKITS has negative serial numbers on purpose
            outcome = pkits.run_case(case)
        full, chain_only = answers[2 * index : 2 * index + 2]
        rows.append((f"pkits:{case['id']}:Verify", outcome.verify, full, outcome.detail))
        rows.append(
            (
                f"pkits:{case['id']}:VerifyNoRevocation",
                outcome.verify_no_revocation,
                chain_only,
                outcome.detail,
            )
        )
        expected_agree += "params" not in case and outcome.agrees
    applicable = sum("params" not in case for case in cases)
    print(f"PKITS expectation (cases without policy inputs): {expected_agree} of {applicable}")
    return rows


@pytest.fixture
def oracle_memo() -> Iterator[tuple[dict, dict]]:
    """openssl's remembered answers per corpus (see openssl_oracle)."""
    _require(limbo.CORPUS / "limbo.json")
    _require(pkits.CORPUS / "pkits.json")
    memos = {corpus: openssl_oracle.load_memo(corpus) for corpus in ("limbo", "pkits")}
    yield memos["limbo"], memos["pkits"]
    for corpus, memo in memos.items():
        openssl_oracle.save_memo(corpus, memo)


def test_verdicts_agree_with_openssl_on_limbo_and_pkits(oracle_memo: tuple[dict, dict]) -> None:
    limbo_memo, pkits_memo = oracle_memo
    run_limbo, agreed_limbo = _compare("limbo", _limbo_rows(limbo_memo))
    run_pkits, agreed_pkits = _compare("pkits", _pkits_rows(pkits_memo))
    run, agreed = run_limbo + run_pkits, agreed_limbo + agreed_pkits
    print(f"all: {agreed} of {run} ({agreed / run:.2%}) agree with openssl")
    assert agreed >= MIN_AGREEMENT * run
