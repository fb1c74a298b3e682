"""First start of a data directory: store, data key, development PKI, admin token. Idempotent."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from certgate.certs.material import CertificateMaterial, load_certificate
from certgate.config.datadir import DataDirLayout, ensure_admin_token, ensure_dev_pki
from certgate.config.sealing import Sealer, load_key
from certgate.config.store import Store


@dataclass(frozen=True)
class DataDir:
    """Everything `serve` needs from the data directory, with the store already migrated."""

    layout: DataDirLayout
    store: Store
    admin_token: str = field(repr=False)

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def database_url(self) -> str:
        return self.store.url

    @property
    def key_file(self) -> Path:
        return self.layout.data_key

    @property
    def admin_token_file(self) -> Path:
        return self.layout.admin_token

    @property
    def dev_ca(self) -> Path:
        """PEM of the development CA: `curl --cacert` this file."""
        return self.layout.dev_ca

    @property
    def dev_server(self) -> Path:
        """PEM with the dev server certificate, the CA and the key (mode 0600)."""
        return self.layout.dev_server

    def dev_server_material(self) -> CertificateMaterial:
        return load_certificate(self.layout.dev_server.read_bytes(), None)


def initialise_data_dir(data_dir: Path, *, database_url: str | None = None) -> DataDir:
    """Creates what is missing in `data_dir` and opens the store.

    A new directory is made 0700; an existing one keeps its mode (the operator chose it). Secret
    files, the SQLite store included, are created 0600. `database_url` overrides the embedded
    SQLite file (e.g. a PostgreSQL URL); the data key still comes from `CERTGATE_DATA_KEY` or
    `data_dir/data.key`.
    """
    layout = DataDirLayout(Path(data_dir))
    if not layout.root.is_dir():
        layout.root.mkdir(parents=True, mode=0o700)
    sealer = Sealer(load_key(layout.data_key))
    token = ensure_admin_token(layout)
    ensure_dev_pki(layout)
    if database_url is None:
        _create_private(layout.database)
    store = Store(database_url or layout.database_url, sealer)
    return DataDir(layout, store, token)


def _create_private(path: Path) -> None:
    """Creates an empty file readable by its owner only, unless it exists: SQLite then opens it
    (and gives its -wal and -shm files the same mode) instead of creating it with the umask."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
