"""Fixtures: one Chromium per module trusting a module CA; per test a management server issued by
that CA (fetching key vault secrets from a real `bao server -dev`) and a fresh browser page."""

from __future__ import annotations

import pytest

from certgate.certs.keyvault import KeyVault, VaultCredentials
from tests import pki
from tests.keyvault.bao import BaoServer
from tests.management.server import management_server
from tests.ui.browser import chromium, sign_in, trusting_home


@pytest.fixture(scope="module")
def authority():
    return pki.ca("UI Test CA")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, authority):
    folder = tmp_path_factory.mktemp("chromium")
    ca_pem = folder / "ca.pem"
    ca_pem.write_bytes(authority.cert_pem)
    with chromium(trusting_home(folder / "home", ca_pem)) as running:
        yield running


@pytest.fixture(scope="module")
def bao():
    with BaoServer() as server:
        yield server


@pytest.fixture
def server(tmp_path, authority, bao):
    vault = KeyVault(VaultCredentials(address=bao.address, token=bao.root_token))
    with management_server(tmp_path / "data", authority=authority, key_vault=vault) as running:
        yield running


@pytest.fixture
def page(browser):
    """A page in a fresh context; JavaScript errors and CSP violations fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.problems = problems
    yield page
    context.close()
    assert not [p for p in problems if not p.startswith(_HTTP_STATUS)], problems


# Chromium logs every 4xx answer (401 before sign-in, a 409 refusal): those are expected.
_HTTP_STATUS = "Failed to load resource: the server responded with a status of"


@pytest.fixture
def admin(page, server):
    """A signed-in page."""
    sign_in(page, server.base_url, server.token)
    return page
