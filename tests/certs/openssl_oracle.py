"""The `openssl verify` CLI as the oracle for certgate's chain verdict (issue 13).

APIM's `Verify()` is .NET's X509Chain, which on Linux builds and checks paths with OpenSSL's
`X509_verify_cert` at default flags (no X509_STRICT, no purpose). Each question is one
`openssl verify` run with the case's anchors (`-CAfile`), intermediates (`-untrusted`), CRLs
(`-CRLfile -crl_check_all`, only when the case has CRLs), time (`-attime`) and depth limit
(`-verify_depth`); the runs go in parallel, one process per question.

Answers are remembered across test runs (`ask_all(..., memo=)`, a JSON file per openssl build in
the temp directory, since the suite runs without pytest's cache): the key is the question's exact
content and the identity of the openssl binary and library, so a remembered answer is the one the
same openssl would give again. Questions at "now" never repeat. Delete the file to ask again.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Question:
    """One verification: DER certificates and CRLs; `crls` None means no revocation check."""

    trusted: Sequence[bytes]
    untrusted: Sequence[bytes]
    leaf: bytes
    crls: Sequence[bytes] | None = None
    at: dt.datetime | None = None
    depth: int | None = None


@dataclass(frozen=True)
class Answer:
    """`ok` is the verdict; `ran` is False when openssl refused the input before verifying."""

    ok: bool
    ran: bool
    detail: str


def _pem(label: str, blobs: Iterable[bytes]) -> bytes:
    out = []
    for der in blobs:
        body = base64.encodebytes(der).decode().replace("\n", "")
        lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        out.append(f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n")
    return "".join(out).encode()


def _ask(question: Question) -> Answer:
    with tempfile.TemporaryDirectory(prefix="oracle-") as folder:
        work = Path(folder)
        (work / "ca.pem").write_bytes(_pem("CERTIFICATE", question.trusted))
        (work / "leaf.pem").write_bytes(_pem("CERTIFICATE", [question.leaf]))
        command = [OPENSSL, "verify", "-no-CApath", "-no-CAstore", "-CAfile", str(work / "ca.pem")]
        if question.untrusted:
            (work / "untrusted.pem").write_bytes(_pem("CERTIFICATE", question.untrusted))
            command += ["-untrusted", str(work / "untrusted.pem")]
        if question.crls is not None:
            (work / "crls.pem").write_bytes(_pem("X509 CRL", question.crls))
            command += ["-CRLfile", str(work / "crls.pem"), "-crl_check_all"]
        if question.at is not None:
            command += ["-attime", str(int(question.at.timestamp()))]
        if question.depth is not None:
            command += ["-verify_depth", str(question.depth)]
        command.append(str(work / "leaf.pem"))
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("error ")]
    if done.returncode == 0 and output.rstrip().endswith(": OK"):
        return Answer(True, True, "")
    if errors:
        return Answer(False, True, errors[0].split(": ", 1)[-1])
    return Answer(False, False, " ".join(output.split())[:200])


@cache
def binary_identity() -> str:
    """A digest of the openssl binary and of what `openssl version -a` says about its library."""
    described = subprocess.run([OPENSSL, "version", "-a"], capture_output=True, timeout=30)
    return hashlib.sha256(Path(OPENSSL).read_bytes() + described.stdout).hexdigest()[:32]


def _key(question: Question) -> str:
    digest = hashlib.sha256(binary_identity().encode())
    for name in ("trusted", "untrusted", "crls"):
        blobs = getattr(question, name)
        digest.update(f"{name}:{'-' if blobs is None else len(blobs)}".encode())
        for blob in blobs or ():
            digest.update(hashlib.sha256(blob).digest())
    at = None if question.at is None else question.at.timestamp()
    digest.update(hashlib.sha256(question.leaf).digest() + repr((at, question.depth)).encode())
    return digest.hexdigest()


def ask_all(questions: Sequence[Question], memo: dict | None = None) -> list[Answer]:
    """`openssl verify`'s answers, in order, a few processes at a time. `memo` (key -> answer
    fields) supplies remembered answers and is left holding exactly this run's answers."""
    keys = [_key(q) for q in questions]
    known = dict(memo or {})
    missing = [(k, q) for k, q in zip(keys, questions, strict=True) if k not in known]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for key, answer in zip(
            [k for k, _ in missing], pool.map(_ask, [q for _, q in missing]), strict=True
        ):
            known[key] = asdict(answer)
    if memo is not None:
        memo.clear()
        memo.update({k: known[k] for k in keys})
    return [Answer(**known[k]) for k in keys]


def memo_file(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"certgate-openssl-oracle-{name}-{binary_identity()}.json"


def load_memo(name: str) -> dict:
    try:
        return json.loads(memo_file(name).read_text())
    except (OSError, ValueError):
        return {}


def save_memo(name: str, memo: dict) -> None:
    """Written whole and renamed into place: parallel runs never see half a file."""
    target = memo_file(name)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(memo))
    os.replace(partial, target)
