"""Fixtures: one `certgate serve` subprocess per module, a plain-HTTP backend, client identities."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import pki
from tests.e2e.serve import EchoBackend, Served
from tests.gateway.support import ClientFiles, write_identity


@dataclass
class Clients:
    """Client identities as PEM files: one under `root`, one self-signed."""

    root: pki.Issued
    root_file: Path
    trusted: ClientFiles
    self_signed: ClientFiles
    self_signed_cert: pki.Issued


@pytest.fixture(scope="module")
def backend() -> Iterator[EchoBackend]:
    with EchoBackend() as echo:
        yield echo


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    server = Served.start(tmp_path_factory.mktemp("served"), http=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clients(tmp_path_factory) -> Clients:
    directory = tmp_path_factory.mktemp("clients")
    root = pki.ca("E2E Clients Root")
    root_file = directory / "clients-ca.pem"
    root_file.write_bytes(root.cert_pem)
    self_signed = pki.issue("e2e self-signed")
    return Clients(
        root,
        root_file,
        write_identity(root.issue("e2e trusted client"), directory, "trusted"),
        write_identity(self_signed, directory, "self-signed"),
        self_signed,
    )
