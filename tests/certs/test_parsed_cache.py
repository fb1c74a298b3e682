"""Client certificates from the handshake: parsed once per process, and only when read."""

from __future__ import annotations

from certgate.certs import certinfo
from certgate.certs.certinfo import PARSED_CACHE_SIZE, cached_der
from certgate.certs.verify import TrustStore, Verifier
from certgate.certs.x509 import X509Certificate2
from tests import pki


def test_reconnecting_clients_share_one_parse_and_the_cache_stays_bounded() -> None:
    root = pki.ca("Root")
    first = root.issue("first")
    assert cached_der(first.der) is cached_der(first.der)
    for n in range(PARSED_CACHE_SIZE):
        cached_der(root.issue(f"client {n}").der)
    assert len(certinfo._parsed) == PARSED_CACHE_SIZE
    assert first.der not in certinfo._parsed  # least recently used goes first


def test_certificate_from_der_reads_like_an_eager_one() -> None:
    root = pki.ca("Root")
    inter = root.issue("Issuing CA", ca=True)
    leaf = inter.issue("client", dns=["c.example.com"])
    verifier = Verifier(TrustStore([root.cert], use_system_roots=False))
    lazy = X509Certificate2.from_der(leaf.der, [inter.der], verifier, {})
    eager = X509Certificate2(leaf.cert, [inter.cert], verifier, {})
    assert lazy.Thumbprint == eager.Thumbprint == leaf.thumbprint
    assert lazy.Subject == "CN=client" and lazy.Issuer == "CN=Issuing CA"
    assert lazy.SubjectAlternativeNames.DnsNames == ["c.example.com"]
    assert lazy.chain == (inter.cert,)
    assert lazy.Equals(eager) and lazy.Verify()
    assert not X509Certificate2.from_der(leaf.der).Verify()  # no trust store, no chain
