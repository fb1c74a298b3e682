"""`load_certificate`: every accepted format, and a precise reason for each refusal."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import pkcs12

from certgate.certs.material import CertificateLoadError, load_certificate
from tests import pki


@pytest.fixture(scope="module")
def leaf() -> pki.Issued:
    intermediate = pki.ca("Material Root").issue("Material Intermediate", ca=True)
    return intermediate.issue("m", subject=pki.name("leaf.example.test", "Contoso, Inc.", "US"))


def test_pkcs12_facts(leaf):
    material = load_certificate(leaf.pfx("pw"), "pw")
    assert material.format == "pkcs12"
    assert material.thumbprint == leaf.thumbprint
    assert material.subject == 'CN=leaf.example.test, O="Contoso, Inc.", C=US'
    assert material.not_after == leaf.cert.not_valid_after_utc
    assert [c.subject for c in material.chain] == [leaf.chain[0].subject]
    assert material.der == leaf.der


def test_pem_bundle_in_any_order_picks_the_keyed_leaf(leaf):
    bundle = leaf.chain_pem + leaf.cert_pem + leaf.key_pem
    material = load_certificate(bundle, None)
    assert material.thumbprint == leaf.thumbprint and material.private_key is not None
    again = load_certificate(material.to_pem(), None)
    assert again.thumbprint == leaf.thumbprint and len(again.chain) == 1
    public = load_certificate(material.to_pem(include_key=False), None)
    assert public.private_key is None and public.thumbprint == leaf.thumbprint


def test_encrypted_pem_key(leaf):
    encrypted = leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"key-pass"),
    )
    assert load_certificate(leaf.cert_pem + encrypted, "key-pass").private_key is not None
    with pytest.raises(CertificateLoadError) as missing:
        load_certificate(leaf.cert_pem + encrypted, None)
    assert missing.value.code == "PasswordRequired"
    with pytest.raises(CertificateLoadError) as wrong:
        load_certificate(leaf.cert_pem + encrypted, "nope-pass")
    assert wrong.value.code == "WrongPassword" and "nope-pass" not in str(wrong.value)


def test_key_not_matching_the_certificate(leaf):
    stranger = pki.new_key()
    pem = leaf.cert_pem + pki.issue("x").key_pem
    with pytest.raises(CertificateLoadError) as mismatch:
        load_certificate(pem, None)
    assert mismatch.value.code == "KeyMismatch"
    try:
        mixed = pkcs12.serialize_key_and_certificates(
            b"x", stranger, leaf.cert, None, serialization.NoEncryption()
        )
    except ValueError:
        return  # cryptography refuses to write such a file; nothing to load
    with pytest.raises(CertificateLoadError) as refused:
        load_certificate(mixed, None)
    assert refused.value.code == "KeyMismatch"


def test_key_of_a_kind_tls_cannot_use(leaf):
    """An X25519 key (key agreement only) is refused on upload, not at the first connection."""
    exchange_only = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(CertificateLoadError) as refused:
        load_certificate(leaf.cert_pem + exchange_only, None)
    assert refused.value.code == "UnsupportedKey" and "RSA, EC" in refused.value.reason


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "NotACertificate"),
        (b"\x30\x03\x02\x01\x05", "NotACertificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "NotACertificate"),
        (b"just text", "NotACertificate"),
    ],
)
def test_unreadable_data(data, code):
    with pytest.raises(CertificateLoadError) as refused:
        load_certificate(data, "the-password")
    assert refused.value.code == code
    assert "the-password" not in str(refused.value)
