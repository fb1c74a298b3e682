"""Decrypting encrypted tokens (JWE compact serialization, RFC 7516) for validate-jwt's
`decryption-keys`, with `cryptography` alone.

Key management (`alg`): `RSA-OAEP` and `RSA-OAEP-256` with an RSA private key; `dir`, `A128KW`,
`A192KW` and `A256KW` with a symmetric key of the algorithm's length. Content encryption
(`enc`): `A128CBC-HS256`, `A192CBC-HS384`, `A256CBC-HS512` (the MAC is checked before anything
is decrypted, so padding errors reveal nothing) and `A128GCM`, `A192GCM`, `A256GCM`. `RSA1_5`
(padding oracles), ECDH-ES, password-based algorithms and `crit` extensions are refused.
`zip: DEF` content is inflated to at most `MAX_TOKEN` bytes, the size of a token the gateway
reads. Every decryption failure reads the same, so answers tell an attacker nothing about which
step failed; an RSA failure goes on with a random content key (RFC 7516 section 11.5).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from certgate.expressions.dotnet.auth import MAX_TOKEN

Key = bytes | rsa.RSAPrivateKey

# enc -> content key length in bytes
_ENC = {
    "A128CBC-HS256": 32,
    "A192CBC-HS384": 48,
    "A256CBC-HS512": 64,
    "A128GCM": 16,
    "A192GCM": 24,
    "A256GCM": 32,
}
_CBC_HASH = {32: "sha256", 48: "sha384", 64: "sha512"}
# alg -> key encryption key length in bytes (None: an RSA private key; 0: the content key itself)
_ALG: dict[str, int | None] = {
    "dir": 0,
    "A128KW": 16,
    "A192KW": 24,
    "A256KW": 32,
    "RSA-OAEP": None,
    "RSA-OAEP-256": None,
}
_OAEP = {
    "RSA-OAEP": OAEP(MGF1(hashes.SHA1()), hashes.SHA1(), None),
    "RSA-OAEP-256": OAEP(MGF1(hashes.SHA256()), hashes.SHA256(), None),
}
SYMMETRIC_LENGTHS = frozenset(_ENC.values()) | frozenset(n for n in _ALG.values() if n)
_UNDECRYPTABLE = "JWT could not be decrypted with the decryption keys."


class JweError(Exception):
    """The token cannot be decrypted; the message says why without telling which step failed."""


@dataclass(frozen=True, slots=True)
class Encrypted:
    """The five parts of a compact JWE, the header read."""

    header: dict
    aad: bytes  # the encoded protected header, as authenticated
    encrypted_key: bytes
    iv: bytes
    ciphertext: bytes
    tag: bytes

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def is_encrypted(token: str) -> bool:
    """A compact JWE has five parts; a JWS three."""
    return token.count(".") == 4


def parse(token: str) -> Encrypted:
    """The token's parts; the algorithms must be ones this module decrypts."""
    parts = token.split(".")
    try:
        raw = [_b64url(part) for part in parts]
        header = json.loads(raw[0])
    except (binascii.Error, ValueError, RecursionError):
        raise JweError("JWT is malformed.") from None
    if not isinstance(header, dict):
        raise JweError("JWT is malformed.")
    alg, enc = header.get("alg"), header.get("enc")
    if alg not in _ALG:
        raise JweError(f"JWE key management algorithm '{str(alg)[:40]}' is not supported.")
    if enc not in _ENC:
        raise JweError(f"JWE content encryption algorithm '{str(enc)[:40]}' is not supported.")
    if "crit" in header:
        raise JweError("JWE critical header extensions are not supported.")
    if header.get("zip", "DEF") != "DEF":
        raise JweError("JWE compression other than DEF is not supported.")
    return Encrypted(header, parts[0].encode("ascii"), *raw[1:])


def decrypt(token: Encrypted, keys: Sequence[Key]) -> bytes:
    """The plaintext, with the first key that decrypts it (keys of the wrong kind or length for
    the token's algorithms are skipped)."""
    alg, enc = token.header["alg"], token.header["enc"]
    size = _ENC[enc]
    for key in keys:
        cek = _content_key(token, alg, size, key)
        if cek is None:
            continue
        try:
            plaintext = _open(token, enc, cek)
        except (InvalidTag, ValueError):
            continue
        return _inflate(plaintext) if "zip" in token.header else plaintext
    raise JweError(_UNDECRYPTABLE)


def _content_key(token: Encrypted, alg: str, size: int, key: Key) -> bytes | None:
    """The content encryption key `key` gives (a random one when RSA decryption fails), or None
    when `key` cannot serve `alg`."""
    wanted = _ALG[alg]
    if wanted is None:
        if not isinstance(key, rsa.RSAPrivateKey):
            return None
        try:
            cek = key.decrypt(token.encrypted_key, _OAEP[alg])
        except ValueError:
            cek = b""
        return cek if len(cek) == size else os.urandom(size)
    if not isinstance(key, bytes):
        return None
    if wanted == 0:
        return key if len(key) == size and not token.encrypted_key else None
    if len(key) != wanted:
        return None
    try:
        cek = aes_key_unwrap(key, token.encrypted_key)
    except (InvalidUnwrap, ValueError):
        return os.urandom(size)
    return cek if len(cek) == size else os.urandom(size)


def _open(token: Encrypted, enc: str, cek: bytes) -> bytes:
    """Authenticate, then decrypt; raises InvalidTag or ValueError."""
    if enc.endswith("GCM"):
        if len(token.iv) != 12 or len(token.tag) != 16:
            raise ValueError("bad GCM parameters")
        return AESGCM(cek).decrypt(token.iv, token.ciphertext + token.tag, token.aad)
    half = len(cek) // 2
    mac_key, enc_key = cek[:half], cek[half:]
    length = (len(token.aad) * 8).to_bytes(8, "big")
    signer = hmac.new(mac_key, digestmod=_CBC_HASH[len(cek)])
    signer.update(token.aad + token.iv + token.ciphertext + length)
    if not hmac.compare_digest(signer.digest()[:half], token.tag):
        raise InvalidTag
    if len(token.iv) != 16 or not token.ciphertext or len(token.ciphertext) % 16:
        raise ValueError("bad CBC parameters")
    decryptor = Cipher(algorithms.AES(enc_key), modes.CBC(token.iv)).decryptor()
    padded = decryptor.update(token.ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        plaintext = inflater.decompress(data, MAX_TOKEN + 1)  # never more, whatever `data` says
    except zlib.error:
        raise JweError(_UNDECRYPTABLE) from None
    if len(plaintext) > MAX_TOKEN:
        raise JweError(f"The decrypted JWT is longer than the {MAX_TOKEN} bytes accepted.")
    if not inflater.eof or inflater.unused_data:
        raise JweError(_UNDECRYPTABLE)
    return plaintext


def _b64url(text: str) -> bytes:
    if "=" in text or "+" in text or "/" in text:
        raise binascii.Error("not base64url")
    standard = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(text) % 4), validate=True)
