"""Screenshots of the admin UI for docs/ui.md: `python -m tests.ui.screenshots [docs/ui]`.

Seeds a fresh store through the REST API (certificates, one from a real `bao server -dev`, a CA,
a CRL, a host name, an API with gateway credentials, a backend), then photographs each page in
Debian's Chromium at 1280x800 (and the certificates page in a 390 px wide window).
"""

from __future__ import annotations

import base64
import datetime as dt
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from playwright.sync_api import Page, expect

from certgate.certs.keyvault import KeyVault, VaultCredentials
from tests import pki
from tests.keyvault.bao import BaoServer
from tests.management.server import ManagementServer, management_server
from tests.ui.browser import chromium, sign_in, trusting_home

PAGES = [
    ("certificates", "#certificates"),
    ("ca-certificates", "#ca"),
    ("custom-domains", "#hostnames"),
    ("key-vault-identities", "#vaults"),
    ("apis", "#apis"),
    ("policy-editor", "#policy/apis/payments"),
    ("backends", "#backends"),
    ("status", "#status"),
]


def seed(server: ManagementServer, bao: BaoServer) -> None:
    root = pki.ca("Contoso Client Root")
    partner = root.issue("partner-gateway.contoso.example")
    tls = pki.server(pki.ca("Contoso TLS Root"), "api.contoso.example")
    soon = root.issue("legacy-client", not_after=pki.NOW + dt.timedelta(days=12))
    bao.put_pfx("certgate/payments-client", root.issue("payments-client.contoso.example").pfx(None))
    with server.client(timeout=30) as client:

        def put(path: str, properties: dict) -> None:
            client.put(path, json={"properties": properties}).raise_for_status()

        for name, issued in (("partner", partner), ("api-tls", tls), ("legacy", soon)):
            data = base64.b64encode(issued.pfx("secret")).decode()
            put(f"/certificates/{name}", {"data": data, "password": "secret"})
        put(
            "/certificates/payments-client",
            {"keyVault": {"secretIdentifier": bao.url("certgate/payments-client")}},
        )
        put(
            "/keyVaultIdentities/ops-vault",
            {"vaultAddress": "https://vault.contoso.example:8200", "token": "s.example"},
        )
        der = base64.b64encode(root.der).decode()
        crl = base64.b64encode(pki.crl(root, [4242]).public_bytes(Encoding.DER)).decode()
        client.patch(
            "/",
            json={
                "properties": {
                    "certificates": [{"storeName": "Root", "encodedCertificate": der}],
                    "hostnameConfigurations": [
                        {
                            "type": "Proxy",
                            "hostName": "api.contoso.example",
                            "certificateId": "api-tls",
                            "negotiateClientCertificate": True,
                        }
                    ],
                }
            },
        ).raise_for_status()
        put("/certificateRevocationLists/contoso-root", {"data": crl})
        put(
            "/apis/payments",
            {"displayName": "Payments", "path": "payments", "serviceUrl": "https://pay.internal"},
        )
        put(
            "/apis/payments/operations/create",
            {"displayName": "Create payment", "method": "POST", "urlTemplate": "/payments"},
        )
        client.post(
            "/apis/payments/gatewayCredentials",
            json={"properties": {"certificateId": "payments-client"}},
        ).raise_for_status()
        put(
            "/backends/ledger",
            {
                "url": "https://ledger.internal",
                "protocol": "http",
                "credentials": {"certificateIds": ["partner"]},
                "tls": {"validateCertificateChain": True, "validateCertificateName": False},
            },
        )


def photograph(page: Page, server: ManagementServer, folder: Path) -> None:
    page.goto(f"{server.base_url}/ui/")
    expect(page.get_by_label("Admin token", exact=True)).to_be_visible()
    page.screenshot(path=folder / "sign-in.png")
    sign_in(page, server.base_url, server.token)
    for name, fragment in PAGES:
        page.goto(f"{server.base_url}/ui/{fragment}")
        page.reload()
        expect(page.locator("#app")).to_have_attribute("aria-busy", "false")
        page.screenshot(path=folder / f"{name}.png")
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{server.base_url}/ui/#certificates")
    page.reload()
    expect(page.locator("#app")).to_have_attribute("aria-busy", "false")
    page.screenshot(path=folder / "certificates-narrow.png")


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    authority = pki.ca("certgate screenshots CA")
    with tempfile.TemporaryDirectory() as temporary, BaoServer() as bao:
        work = Path(temporary)
        (work / "ca.pem").write_bytes(authority.cert_pem)
        vault = KeyVault(VaultCredentials(address=bao.address, token=bao.root_token))
        with (
            management_server(work / "data", authority=authority, key_vault=vault) as server,
            chromium(trusting_home(work / "home", work / "ca.pem")) as browser,
        ):
            seed(server, bao)
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            photograph(context.new_page(), server, folder)
            context.close()
    for png in sorted(folder.glob("*.png")):
        print(f"{png}: {png.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/ui"))
