"""The benchmark's PKI, made fresh for every run from `tests/pki.py` (the project's one factory).

One ECDSA P-256 CA issues everything, as in perf-anchors section 3: the server certificate that the
backend and both proxies present, the load generator's client certificate (`ab -E` wants key and
certificate in one PEM), and the gateway's client certificate for the outbound leg.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests import pki

PFX_PASSWORD = "bench"


@dataclass(frozen=True)
class BenchPki:
    ca: pki.Issued
    server: pki.Issued
    loadgen: pki.Issued
    gateway: pki.Issued
    directory: Path

    @property
    def ca_pem(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_pem(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def loadgen_pem(self) -> Path:
        """Key and certificate in one file, for `ab -E` and `curl --cert`."""
        return self.directory / "loadgen-combined.pem"

    @property
    def gateway_pem(self) -> Path:
        return self.directory / "gateway.pem"

    @property
    def gateway_key(self) -> Path:
        return self.directory / "gateway.key"


def make_pki(directory: Path, key_kind: str = "ec") -> BenchPki:
    """Issues the certificates and writes the PEM files nginx, ab and curl read."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = pki.ca("certgate bench CA", key_kind=key_kind)
    made = BenchPki(
        ca=ca,
        server=ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], key_kind=key_kind),
        loadgen=ca.issue("bench-loadgen", key_kind=key_kind),
        gateway=ca.issue("bench-gateway", key_kind=key_kind),
        directory=directory,
    )
    made.ca_pem.write_bytes(ca.cert_pem)
    made.server.write(directory, "server")
    made.gateway.write(directory, "gateway")
    made.loadgen_pem.write_bytes(made.loadgen.key_pem + made.loadgen.cert_pem)
    return made
