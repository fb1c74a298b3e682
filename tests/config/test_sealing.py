"""Sealing: AES-GCM bound to the path, and the data key's file and environment rules."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from certgate.config.sealing import KEY_ENV, Sealer, SealingError, load_key


def test_sealed_blob_opens_only_for_its_own_path():
    sealer = Sealer(os.urandom(32))
    blob = sealer.seal("certificates/a", {"pem": "KEY MATERIAL"})
    assert b"KEY MATERIAL" not in blob
    assert sealer.unseal("certificates/a", blob) == {"pem": "KEY MATERIAL"}
    with pytest.raises(SealingError, match="certificates/b"):
        sealer.unseal("certificates/b", blob)
    with pytest.raises(SealingError):
        Sealer(os.urandom(32)).unseal("certificates/a", blob)


def test_key_file_is_created_0600_and_reused(tmp_path):
    key_file = tmp_path / "data.key"
    first = load_key(key_file, env={})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) == 32
    assert load_key(key_file, env={}) == first


def test_loose_key_file_is_refused(tmp_path):
    key_file = tmp_path / "data.key"
    load_key(key_file, env={})
    key_file.chmod(0o644)
    with pytest.raises(SealingError, match="0644"):
        load_key(key_file, env={})


def test_environment_key_wins_and_is_checked(tmp_path):
    key = os.urandom(32)
    assert load_key(tmp_path / "unused.key", env={KEY_ENV: base64.b64encode(key).decode()}) == key
    assert not (tmp_path / "unused.key").exists()
    with pytest.raises(SealingError, match="32 bytes"):
        load_key(None, env={KEY_ENV: base64.b64encode(b"short").decode()})
    with pytest.raises(SealingError, match="base64"):
        load_key(None, env={KEY_ENV: "not base64!"})
