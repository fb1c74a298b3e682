"""AES-256-GCM sealing of secrets at rest, each blob bound to the resource path it belongs to.

Binding the path as associated data means a sealed blob copied onto another row fails to open, so a
database edit cannot move a private key from one certificate to another.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "CERTGATE_DATA_KEY"
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SealingError(Exception):
    """The data key is missing, malformed or wrong, or a sealed blob was tampered with."""


class Sealer:
    """Seals JSON-serialisable secrets with one 256-bit key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SealingError("the data key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    def seal(self, path: str, secrets: dict) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(secrets, separators=(",", ":")).encode()
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, _aad(path))

    def unseal(self, path: str, blob: bytes) -> dict:
        if not blob.startswith(_VERSION) or len(blob) < 1 + _NONCE_BYTES + 16:
            raise SealingError(f"sealed secrets of '{path}' have an unknown format")
        nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return json.loads(self._aead.decrypt(nonce, body, _aad(path)))
        except InvalidTag:
            raise SealingError(
                f"sealed secrets of '{path}' do not open with this data key"
            ) from None


def _aad(path: str) -> bytes:
    return b"certgate/v1:" + path.encode()


def load_key(key_file: Path | None, *, env: dict[str, str] | None = None) -> bytes:
    """The data key: `CERTGATE_DATA_KEY` (base64 of 32 bytes) wins, else the key file.

    The key file is created with mode 0600 on first use; an existing one readable by group or others
    is refused, as ssh refuses a loose private key.
    """
    value = (os.environ if env is None else env).get(KEY_ENV)
    if value:
        return _decode_key(value.strip(), KEY_ENV)
    if key_file is None:
        raise SealingError(f"no data key: set {KEY_ENV} or give a key file")
    if not key_file.exists():
        _create_key_file(key_file)
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise SealingError(
            f"data key file {key_file} has mode {mode:04o}; it must be 0600 (chmod 600 it)"
        )
    return _decode_key(key_file.read_text().strip(), str(key_file))


def _create_key_file(key_file: Path) -> None:
    key_file.parent.mkdir(parents=True, exist_ok=True)
    encoded = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(encoded + "\n")


def _decode_key(value: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SealingError(f"the data key in {origin} is not valid base64") from None
    if len(key) != 32:
        raise SealingError(f"the data key in {origin} must decode to 32 bytes, not {len(key)}")
    return key
