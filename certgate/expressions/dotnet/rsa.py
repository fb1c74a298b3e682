"""Certificates an expression loads itself, and RSA: `new X509Certificate2(byte[][, password])`,
the keys behind `GetRSAPrivateKey()` / `GetRSAPublicKey()` (RSACertificateExtensions, offered by
`certs.x509.X509Certificate2`), `RSA.SignData` and friends, `HashAlgorithmName`,
`RSASignaturePadding`, `RSAEncryptionPadding`.

APIM allows all of these; real policies sign client-assertion JWTs with a PFX fetched from Key
Vault. The key stays inside the certificate object: nothing here logs or renders it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from ..errors import cs_error
from ..model import CsObject
from ..runtime import cs_str
from . import CsType, register
from .numbers import bytes_of

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "MD5": hashes.MD5,
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


class HashAlgorithmName(CsObject):
    __slots__ = ("Name",)
    __cs_type__ = "HashAlgorithmName"
    __cs_members__ = frozenset({"Name", "ToString"})

    def __init__(self, name: object) -> None:
        self.Name = cs_str(name)

    def ToString(self) -> str:
        return self.Name

    def __cs_equals__(self, other: object) -> bool:
        return isinstance(other, HashAlgorithmName) and other.Name == self.Name

    def algorithm(self) -> hashes.HashAlgorithm:
        kind = _HASHES.get(self.Name)
        if kind is None:
            raise cs_error("CryptographicException", f"'{self.Name}' is not a hash algorithm.")
        return kind()


class Padding(CsObject):
    """RSASignaturePadding / RSAEncryptionPadding: a named mode."""

    __slots__ = ("Mode", "_kind")
    __cs_type__ = "RSASignaturePadding"
    __cs_members__ = frozenset({"Mode", "ToString"})

    def __init__(self, kind: str, mode: str) -> None:
        self._kind = kind
        self.Mode = mode

    def ToString(self) -> str:
        return self.Mode

    def for_signature(self, digest: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
        if self.Mode == "Pss":
            return padding.PSS(padding.MGF1(digest), padding.PSS.DIGEST_LENGTH)
        return padding.PKCS1v15()

    def for_encryption(self) -> padding.AsymmetricPadding:
        if self.Mode.startswith("Oaep"):
            digest = _HASHES[self.Mode.removeprefix("Oaep")]()
            return padding.OAEP(padding.MGF1(digest), digest, None)
        return padding.PKCS1v15()


class RSA(CsObject):
    """An RSA key (`RSACng`, `RSAOpenSsl`... on .NET): sign/verify, encrypt/decrypt."""

    __slots__ = ("_private", "_public")
    __cs_type__ = "RSA"
    __cs_interfaces__ = ("RSACng", "RSAOpenSsl", "RSACryptoServiceProvider", "AsymmetricAlgorithm")
    __cs_members__ = frozenset(
        {
            "KeySize",
            "SignData",
            "VerifyData",
            "SignHash",
            "VerifyHash",
            "Encrypt",
            "Decrypt",
            "Dispose",
        }
    )

    def __init__(self, public: rsa.RSAPublicKey, private: rsa.RSAPrivateKey | None) -> None:
        self._public = public
        self._private = private

    @property
    def KeySize(self) -> int:
        return self._public.key_size

    def _key(self) -> rsa.RSAPrivateKey:
        if self._private is None:
            raise cs_error("CryptographicException", "The key does not include a private key.")
        return self._private

    def SignData(self, data: object, name: HashAlgorithmName, pad: Padding) -> bytes:
        digest = name.algorithm()
        return self._key().sign(bytes_of(data), pad.for_signature(digest), digest)

    def SignHash(self, digest_bytes: object, name: HashAlgorithmName, pad: Padding) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        digest = name.algorithm()
        return self._key().sign(
            bytes_of(digest_bytes), pad.for_signature(digest), Prehashed(digest)
        )

    def VerifyData(
        self, data: object, signature: object, name: HashAlgorithmName, pad: Padding
    ) -> bool:
        digest = name.algorithm()
        try:
            signed = bytes_of(data)
            self._public.verify(bytes_of(signature), signed, pad.for_signature(digest), digest)
        except InvalidSignature:
            return False
        return True

    def VerifyHash(
        self, digest_bytes: object, signature: object, name: HashAlgorithmName, pad: Padding
    ) -> bool:
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        digest = name.algorithm()
        try:
            self._public.verify(
                bytes_of(signature),
                bytes_of(digest_bytes),
                pad.for_signature(digest),
                Prehashed(digest),
            )
        except InvalidSignature:
            return False
        return True

    def Encrypt(self, data: object, pad: Padding) -> bytes:
        return self._public.encrypt(bytes_of(data), pad.for_encryption())

    def Decrypt(self, data: object, pad: Padding) -> bytes:
        try:
            return self._key().decrypt(bytes_of(data), pad.for_encryption())
        except ValueError:
            raise cs_error("CryptographicException", "The parameter is incorrect.") from None

    def Dispose(self) -> None:
        return None


def load_certificate(data: object, password: object = None, *_flags: object) -> CsObject:
    """`new X509Certificate2(rawData[, password[, flags]])`: PKCS#12 (with its key), DER or PEM."""
    from certgate.certs.x509 import X509Certificate2

    raw = bytes_of(data)
    secret = None if password is None else cs_str(password).encode()
    key = None
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(raw, secret)
    except ValueError:
        cert = None
    try:
        if cert is None:
            pem = raw.lstrip().startswith(b"-----BEGIN")
            load = x509.load_pem_x509_certificate if pem else x509.load_der_x509_certificate
            cert = load(raw)
    except ValueError:
        raise cs_error("CryptographicException", "Cannot find the requested object.") from None
    loaded = X509Certificate2(cert)
    loaded.__dict__["private_key"] = key  # where HasPrivateKey and GetRSAPrivateKey look
    return loaded


def rsa_private_key(key: object) -> RSA | None:
    """`GetRSAPrivateKey()` of a certificate holding `key` (null unless an RSA private key)."""
    return RSA(key.public_key(), key) if isinstance(key, rsa.RSAPrivateKey) else None


def rsa_public_key(cert: x509.Certificate) -> RSA | None:
    key = cert.public_key()
    return RSA(key, None) if isinstance(key, rsa.RSAPublicKey) else None


register(
    CsType(
        "HashAlgorithmName",
        lambda v: isinstance(v, HashAlgorithmName),
        static_props={name: partial(HashAlgorithmName, name) for name in _HASHES},
        new=HashAlgorithmName,
    )
)
register(
    CsType(
        "RSASignaturePadding",
        lambda v: isinstance(v, Padding) and v._kind == "signature",
        static_props={
            "Pkcs1": lambda: Padding("signature", "Pkcs1"),
            "Pss": lambda: Padding("signature", "Pss"),
        },
    )
)
register(
    CsType(
        "RSAEncryptionPadding",
        lambda v: isinstance(v, Padding) and v._kind == "encryption",
        static_props={
            "Pkcs1": lambda: Padding("encryption", "Pkcs1"),
            **{
                f"Oaep{h}": partial(Padding, "encryption", f"Oaep{h}")
                for h in ("SHA1", "SHA256", "SHA384", "SHA512")
            },
        },
    )
)
register(
    CsType(
        "X509Certificate2",
        lambda v: getattr(v, "__cs_type__", None) == "X509Certificate2",
        new=load_certificate,
    ),
    "X509Certificate",
)
for _name in ("RSA", "RSACng", "RSAOpenSsl", "RSACryptoServiceProvider", "AsymmetricAlgorithm"):
    register(CsType(_name, lambda v: isinstance(v, RSA)))
