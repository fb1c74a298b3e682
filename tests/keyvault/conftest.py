"""Fixtures: a real OpenBao dev server (one per module), credentials for it, a store."""

from __future__ import annotations

import os

import pytest

from certgate.certs.keyvault import KeyVault, VaultCredentials
from certgate.config.sealing import Sealer
from certgate.config.store import Store
from tests.keyvault.bao import BaoServer


@pytest.fixture(scope="module")
def bao():
    """One `bao server -dev` per test module; tests seed their own secret paths."""
    with BaoServer() as server:
        yield server


@pytest.fixture
def own_bao():
    """A server of the test's own, for tests that stop and start it."""
    with BaoServer() as server:
        yield server


@pytest.fixture
def root_credentials(bao) -> VaultCredentials:
    return VaultCredentials(address=bao.address, token=bao.root_token)


@pytest.fixture
def key_vault(root_credentials) -> KeyVault:
    return KeyVault(root_credentials)


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}", Sealer(os.urandom(32)))
    yield store
    store.close()


@pytest.fixture
def service_vault(root_credentials) -> KeyVault:
    """The management API's vault access (a module may override it: Azure)."""
    return KeyVault(root_credentials)


@pytest.fixture
def management(tmp_path, store, service_vault):
    """The real management API (HTTPS) on `store`, fetching through `service_vault`."""
    from tests.management.server import management_server

    with management_server(tmp_path / "mgmt", store=store, key_vault=service_vault) as running:
        yield running


@pytest.fixture
def api(management):
    with management.client(timeout=30) as http:
        yield http
