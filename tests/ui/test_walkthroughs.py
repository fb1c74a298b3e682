"""The portal walkthroughs of the Azure documentation, in Debian's Chromium against a real HTTPS
management server (and a real `bao server -dev` for key vault certificates)."""

from __future__ import annotations

import base64
import datetime as dt
import re

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from playwright.sync_api import expect

from tests import pki
from tests.ui.browser import row

PASSWORD = "pfx-pass-1"


def upload(client: httpx.Client, name: str, issued: pki.Issued) -> None:
    data = base64.b64encode(issued.pfx(PASSWORD)).decode()
    body = {"properties": {"data": data, "password": PASSWORD}}
    answer = client.put(f"/certificates/{name}", json=body)
    assert answer.status_code in (200, 201), answer.text


def test_upload_a_pfx_with_its_password(admin, server, tmp_path):
    leaf = pki.ca("Upload Root").issue("upload.example.com")
    pfx = tmp_path / "client.pfx"
    pfx.write_bytes(leaf.pfx(PASSWORD))
    form = admin.locator("#upload-form")
    form.get_by_label("Id", exact=True).fill("client1")
    form.get_by_label("PFX / certificate file", exact=True).set_input_files(str(pfx))
    form.get_by_label("Password", exact=True).fill(PASSWORD)
    form.get_by_role("button", name="Upload").click()
    expect(admin.get_by_role("status")).to_contain_text("Certificate 'client1' saved.")
    line = row(admin, "client1")
    expect(line).to_contain_text("CN=upload.example.com")
    expect(line).to_contain_text(leaf.thumbprint)
    expect(line.locator("td").nth(4)).to_have_text("Yes")
    expect(line.locator("td.source")).to_have_text("Upload")
    assert server.store.get("certificates/client1").properties["thumbprint"] == leaf.thumbprint


def test_a_wrong_pfx_password_is_refused_naming_the_field(admin, server, tmp_path):
    pfx = tmp_path / "client.pfx"
    pfx.write_bytes(pki.ca("Pw Root").issue("pw.example.com").pfx(PASSWORD))
    form = admin.locator("#upload-form")
    form.get_by_label("Id", exact=True).fill("client1")
    form.get_by_label("PFX / certificate file", exact=True).set_input_files(str(pfx))
    form.get_by_label("Password", exact=True).fill("not-the-password")
    form.get_by_role("button", name="Upload").click()
    expect(admin.get_by_role("alert")).to_contain_text("ValidationError")
    assert "not-the-password" not in admin.content()
    assert server.store.get("certificates/client1") is None


def test_reference_a_key_vault_certificate_and_refresh_it(admin, server, bao):
    first = pki.ca("Vault Root").issue("vault-v1.example.com")
    bao.put_pfx("ui/gateway", first.pfx(None))
    form = admin.locator("#keyvault-form")
    form.get_by_label("Id", exact=True).fill("kv1")
    form.get_by_label("Secret identifier", exact=True).fill(bao.url("ui/gateway"))
    form.get_by_role("button", name="Add").click()
    expect(admin.get_by_role("status")).to_contain_text("Key vault certificate 'kv1' saved.")
    line = row(admin, "kv1")
    expect(line.locator("td.source")).to_contain_text("Key vault")
    expect(line.locator("td.source")).to_contain_text(bao.url("ui/gateway"))
    expect(line).to_contain_text(first.thumbprint)

    second = pki.ca("Vault Root 2").issue("vault-v2.example.com")
    bao.put_pfx("ui/gateway", second.pfx(None))
    line.get_by_role("button", name="Refresh").click()
    expect(admin.get_by_role("status")).to_contain_text("refreshed from the key vault")
    line = row(admin, "kv1")
    expect(line).to_contain_text(second.thumbprint)
    expect(line).to_contain_text("CN=vault-v2.example.com")
    expect(line.locator(".last-status")).to_contain_text("Success")

    bao.delete("ui/gateway")
    line.get_by_role("button", name="Refresh").click()
    expect(admin.get_by_role("alert")).to_contain_text("Refresh of 'kv1' failed")
    line = row(admin, "kv1")
    expect(line.locator(".last-status .badge")).to_have_class(re.compile(r"\bbad\b"))
    expect(line).to_contain_text(second.thumbprint)  # the last good version stays in use


def test_add_a_root_ca_and_a_crl(admin, server, tmp_path):
    root = pki.ca("Client Root CA")
    (tmp_path / "root.cer").write_bytes(root.der)
    crl = pki.crl(root, [1234])
    (tmp_path / "root.crl").write_bytes(crl.public_bytes(Encoding.DER))
    admin.get_by_role("link", name="CA certificates", exact=True).click()
    form = admin.locator("#ca-form")
    form.locator("select[name=storeName]").select_option("Root")
    form.get_by_label("Certificate file", exact=True).set_input_files(str(tmp_path / "root.cer"))
    form.get_by_role("button", name="Add").click()
    expect(admin.get_by_role("status")).to_contain_text("CA certificate added to Root.")
    expect(row(admin, root.thumbprint)).to_contain_text("CN=Client Root CA")
    stored = server.store.get("service").properties["certificates"]
    assert [(c["storeName"], c["certificate"]["thumbprint"]) for c in stored] == [
        ("Root", root.thumbprint)
    ]

    form = admin.locator("#crl-form")
    form.get_by_label("Id", exact=True).fill("root-crl")
    crl_file = form.get_by_label("CRL file (DER or PEM)", exact=True)
    crl_file.set_input_files(str(tmp_path / "root.crl"))
    form.get_by_role("button", name="Upload CRL").click()
    expect(admin.get_by_role("status")).to_contain_text("CRL 'root-crl' uploaded.")
    expect(row(admin, "root-crl")).to_contain_text("CN=Client Root CA")


def test_switch_negotiate_client_certificate_on_for_a_hostname(admin, server):
    with server.client() as client:
        upload(client, "tls", pki.server(pki.ca("Host Root"), "api.example.com"))
    admin.get_by_role("link", name="Custom domains", exact=True).click()
    form = admin.locator("#hostname-form")
    form.get_by_label("Host name", exact=True).fill("api.example.com")
    form.locator("select[name=certificateId]").select_option("tls")
    form.get_by_role("button", name="Add").click()
    expect(admin.get_by_role("status")).to_contain_text("Added api.example.com.")
    switch = row(admin, "api.example.com").get_by_label("Negotiate client certificate", exact=True)
    expect(switch).not_to_be_checked()
    switch.check()
    expect(admin.get_by_role("status")).to_contain_text("Saved api.example.com.")
    switch = row(admin, "api.example.com").get_by_label("Negotiate client certificate", exact=True)
    expect(switch).to_be_checked()
    (host,) = server.store.get("service").properties["hostnameConfigurations"]
    assert host["hostName"] == "api.example.com" and host["negotiateClientCertificate"] is True
    assert host["certificateId"] == "tls"


def test_attach_gateway_credentials_then_deleting_the_certificate_is_refused(admin, server):
    with server.client() as client:
        upload(client, "gw", pki.ca("Gw Root").issue("gateway-client"))
    admin.get_by_role("link", name="APIs", exact=True).click()
    form = admin.locator("#api-form")
    form.get_by_label("Id", exact=True).fill("orders")
    form.get_by_label("API URL suffix", exact=True).fill("orders")
    form.get_by_label("Web service URL", exact=True).fill("https://backend.example")
    form.get_by_role("button", name="Create").click()
    expect(admin.get_by_role("status")).to_contain_text("API 'orders' saved.")
    form = admin.locator("#operation-form")
    form.locator("select[name=api]").select_option("orders")
    form.get_by_label("Id", exact=True).fill("create")
    form.locator("select[name=method]").select_option("POST")
    form.get_by_label("URL template", exact=True).fill("/orders")
    form.get_by_role("button", name="Add").click()
    expect(admin.get_by_role("status")).to_contain_text("Operation 'create' saved.")
    expect(row(admin, "orders")).to_contain_text("POST /orders")
    assert server.store.get("apis/orders/operations/create").properties["method"] == "POST"
    admin.locator('a[href="#policy/apis/orders"]').click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("API 'orders' policy")
    admin.locator("#gateway-certificate").select_option("gw")
    admin.get_by_role("button", name="Apply").click()
    expect(admin.get_by_role("status")).to_contain_text("Gateway credentials set")
    expect(admin.locator("#policy-xml")).to_have_value(
        re.compile(r'<inbound>\s*<base\s*/>\s*<authentication-certificate certificate-id="gw"\s*/>')
    )
    stored = server.store.get("apis/orders/policies/policy").properties["value"]
    assert 'certificate-id="gw"' in stored

    admin.get_by_role("link", name="Certificates", exact=True).click()
    line = row(admin, "gw")
    expect(line.locator("td.used-by")).to_contain_text("apis/orders/policies/policy")
    line.get_by_role("button", name="Delete").click()
    alert = admin.get_by_role("alert")
    expect(alert).to_contain_text("CertificateInUse")
    expect(alert).to_contain_text("is in use by 1 resource(s)")
    expect(alert).to_contain_text("referenced by 'apis/orders/policies/policy'")
    assert server.store.get("certificates/gw") is not None


def test_policy_errors_show_their_line_and_column(admin, server):
    with server.client() as client:
        client.put("/apis/a1", json={"properties": {"path": "a1"}}).raise_for_status()
    admin.goto(f"{server.base_url}/ui/#policy/apis/a1")
    editor = admin.locator("#policy-xml")
    expect(editor).to_have_value(re.compile("<policies>"))
    editor.fill(
        "<policies>\n  <inbound>\n    <base />\n    <no-such-policy />\n  </inbound>\n</policies>"
    )
    admin.get_by_role("button", name="Save").click()
    expect(admin.get_by_role("alert").first).to_contain_text("no-such-policy")
    position = admin.locator("#policy-error-position")
    expect(position).to_have_text(re.compile(r"At line 4, column \d+\."))
    selected = editor.evaluate("e => e.value.slice(e.selectionStart, e.selectionEnd)")
    assert "no-such-policy" in selected
    assert server.store.get("apis/a1/policies/policy") is None


def test_global_product_and_operation_policies_are_edited_in_place(admin, server):
    with server.client() as client:
        client.put("/apis/a1", json={"properties": {"path": "a1"}}).raise_for_status()
        client.put("/products/p1", json={"properties": {"displayName": "P1"}}).raise_for_status()
        client.put(
            "/apis/a1/operations/get",
            json={"properties": {"method": "GET", "urlTemplate": "/x", "displayName": "get"}},
        ).raise_for_status()
    policy = (
        '<policies><inbound><base /><set-header name="X-Ui" exists-action="override">'
        "<value>1</value></set-header></inbound><backend><base /></backend>"
        "<outbound><base /></outbound><on-error><base /></on-error></policies>"
    )
    links = {
        "Global policy (all APIs)": ("#policy/", "policies/policy"),
        "Product 'p1' policy": ("#policy/products/p1", "products/p1/policies/policy"),
        "Operation 'get' of API 'a1' policy": (
            "#policy/apis/a1/operations/get",
            "apis/a1/operations/get/policies/policy",
        ),
    }
    for title, (href, stored) in links.items():
        admin.get_by_role("link", name="APIs", exact=True).click()
        admin.locator(f'a[href="{href}"]').click()
        expect(admin.get_by_role("heading", level=1)).to_have_text(title)
        expect(admin.locator("#app")).to_have_attribute("aria-busy", "false")
        admin.locator("#policy-xml").fill(policy)
        admin.get_by_role("button", name="Save").click()
        expect(admin.get_by_role("status")).to_have_text("Policy saved.")
        assert "X-Ui" in server.store.get(stored).properties["value"]


def test_backend_certificate_and_tls_switches(admin, server):
    with server.client() as client:
        upload(client, "mtls", pki.ca("Backend Root").issue("backend-client"))
    admin.get_by_role("link", name="Backends", exact=True).click()
    form = admin.locator("#backend-form")
    form.get_by_label("Id", exact=True).fill("payments")
    form.get_by_label("URL", exact=True).fill("https://payments.example")
    form.locator("select[name=certificateId]").select_option("mtls")
    form.get_by_role("button", name="Save").click()
    expect(admin.get_by_role("status")).to_contain_text("Backend 'payments' saved.")
    line = row(admin, "payments")
    expect(line).to_contain_text("mtls")
    line.get_by_label("Validate certificate name", exact=True).uncheck()
    expect(admin.get_by_role("status")).to_have_text(
        "Backend 'payments': validate certificate name off."
    )
    line = row(admin, "payments")
    expect(line.get_by_label("Validate certificate name", exact=True)).not_to_be_checked()
    expect(line.get_by_label("Validate certificate chain", exact=True)).to_be_checked()
    stored = server.store.get("backends/payments").properties
    assert stored["tls"] == {"validateCertificateChain": True, "validateCertificateName": False}


def test_key_vault_identity_secrets_are_never_shown(admin, server):
    admin.get_by_role("link", name="Key vault identities", exact=True).click()
    form = admin.locator("#identity-form")
    form.get_by_label("Id", exact=True).fill("vault1")
    form.get_by_label("Vault address", exact=True).fill("https://vault.example:8200")
    form.get_by_label("Token", exact=True).fill("s.super-secret-token")
    form.get_by_role("button", name="Save").click()
    expect(admin.get_by_role("status")).to_contain_text("Identity 'vault1' saved.")
    expect(row(admin, "vault1")).to_contain_text("token")
    assert "super-secret" not in admin.content()
    assert admin.locator("#identity-form").get_by_label("Token", exact=True).input_value() == ""


def test_hostile_subject_is_displayed_as_text(admin, server):
    hostile = (
        '<script>window.pwned=1</script><img src=x id=pwn onerror="window.pwned=2">\x1b[2J\u202e'
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, hostile[:31]),
            x509.NameAttribute(NameOID.COMMON_NAME, hostile[31:]),
        ]
    )
    with server.client() as client:
        upload(client, "evil", pki.issue("evil", subject=subject))
    admin.reload()
    cell = row(admin, "evil").locator("td.subject")
    expect(cell).to_contain_text("<script>window.pwned=1</script>")
    expect(cell).to_contain_text("\u241b[2J")  # ESC shown as the control picture
    expect(cell).to_contain_text("<U+202E>")
    assert admin.locator("#pwn").count() == 0
    assert admin.evaluate("window.pwned") is None
    admin.get_by_role("link", name="Status", exact=True).click()
    expect(admin.locator("#expiry-timeline")).to_contain_text("<script>window.pwned=1</script>")
    assert admin.evaluate("window.pwned") is None


def test_expiring_certificates_are_highlighted_and_on_the_timeline(admin, server):
    soon = pki.ca("Soon Root").issue("soon", not_after=pki.NOW + dt.timedelta(days=10))
    later = pki.ca("Later Root").issue("later", not_after=pki.NOW + dt.timedelta(days=200))
    with server.client() as client:
        upload(client, "later", later)
        upload(client, "soon", soon)
    admin.reload()
    expect(row(admin, "soon")).to_have_class(re.compile(r"\bsoon\b"))
    expect(row(admin, "later")).not_to_have_class(re.compile(r"\bsoon\b"))
    admin.get_by_role("link", name="Status", exact=True).click()
    expect(admin.locator("#store-revision")).to_have_text(str(server.store.revision()))
    items = admin.locator("#expiry-timeline li")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("certificate soon")
    expect(items.nth(0)).to_have_class("soon")
    expect(items.nth(1)).to_contain_text("certificate later")
