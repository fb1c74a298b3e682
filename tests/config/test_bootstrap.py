"""First start of a data directory, and the second start that must change nothing."""

from __future__ import annotations

import os
import ssl
import stat

import pytest

from certgate.config.bootstrap import initialise_data_dir


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv("CERTGATE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CERTGATE_DATA_KEY", raising=False)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_everything_private(tmp_path):
    data = initialise_data_dir(tmp_path / "data")
    assert _mode(data.root) == 0o700
    assert _mode(data.key_file) == 0o600
    assert _mode(data.admin_token_file) == 0o600
    assert _mode(data.dev_server) == 0o600
    assert data.admin_token == data.admin_token_file.read_text().strip()
    assert len(data.admin_token) >= 32
    assert data.admin_token not in repr(data)
    assert data.store.revision() == 0
    server = data.dev_server_material()
    assert server.subject == "CN=localhost" and server.private_key is not None
    context = ssl.create_default_context(cafile=str(data.dev_ca))
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "certgate development CA"),),)


def test_second_start_is_idempotent(tmp_path):
    first = initialise_data_dir(tmp_path / "data")
    first.store.put("certificate", "certificates/a", {}, secrets={"pem": "x"})
    files = {p.name: p.read_bytes() for p in first.root.iterdir() if not p.name.startswith("cert")}
    first.store.close()
    second = initialise_data_dir(tmp_path / "data")
    assert second.admin_token == first.admin_token
    assert second.store.get("certificates/a").secrets == {"pem": "x"}
    for name, content in files.items():
        assert (second.root / name).read_bytes() == content, name


def test_admin_token_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CERTGATE_ADMIN_TOKEN", "from-the-environment")
    assert initialise_data_dir(tmp_path / "data").admin_token == "from-the-environment"


def test_an_existing_directory_keeps_its_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)  # the operator's choice, e.g. a group that reads the dev CA
    data = initialise_data_dir(shared)
    assert _mode(shared) == 0o750
    assert _mode(data.key_file) == 0o600 and _mode(data.admin_token_file) == 0o600
    initialise_data_dir(shared)
    assert _mode(shared) == 0o750


def test_the_sqlite_store_and_its_journal_files_are_private(tmp_path):
    previous = os.umask(0o022)  # a permissive umask, as many shells have
    try:
        data = initialise_data_dir(tmp_path / "data")
        data.store.put("api", "apis/a", {})
    finally:
        os.umask(previous)
    files = sorted(data.root.glob("certgate.sqlite*"))
    assert data.root / "certgate.sqlite" in files
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
    data.store.close()
