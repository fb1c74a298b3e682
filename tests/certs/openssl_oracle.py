"""The `openssl verify` CLI as the oracle for certgate's chain verdict (issue 13).

APIM's `Verify()` is .NET's X509Chain, which on Linux builds and checks paths with OpenSSL's
`X509_verify_cert` at default flags (no X509_STRICT, no purpose). Each question is one
`openssl verify` run with the case's anchors (`-CAfile`), intermediates (`-untrusted`), CRLs
(`-CRLfile -crl_check_all`, only when the case has CRLs), time (`-attime`) and depth limit
(`-verify_depth`); the runs go in parallel, one process per question.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


def ask_all(questions: Sequence[Question]) -> list[Answer]:
    """`openssl verify`'s answers, in order, a few processes at a time."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(_ask, questions))
