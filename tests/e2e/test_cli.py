"""The `certgate` CLI end to end against a served management API: tables, JSON, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import pki
from tests.e2e.serve import UNVERIFIED, Served, deny_when

PASSWORD = "pfx-Secret-42"


def _openssl_pfx(issued: pki.Issued, directory: Path, stem: str, password: str) -> Path:
    """A PFX made by the real `openssl pkcs12 -export`, as an operator would."""
    cert, key = issued.write(directory, stem)
    pfx = directory / f"{stem}.pfx"
    argv = ["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-out", str(pfx)]
    subprocess.run([*argv, "-passout", f"pass:{password}"], check=True, capture_output=True)
    return pfx


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("cli")
    password = directory / "password"
    password.write_text(PASSWORD + "\n")
    root = pki.ca("CLI Root")
    return {
        "password": password,
        "server_pfx": _openssl_pfx(pki.server(root, "api.cli.test"), directory, "server", PASSWORD),
        "client_pfx": _openssl_pfx(root.issue("cli client"), directory, "client", PASSWORD),
        "root": root.write(directory, "root")[0],
        "directory": directory,
    }


def test_cert_add_with_password_file_then_list_and_show(served: Served, files) -> None:
    added = json.loads(
        served.ok(
            "cert", "add", "srv", "--pfx", str(files["server_pfx"]),
            "--password-file", str(files["password"]), "--output", "json",
        )
    )  # fmt: skip
    thumbprint = added["properties"]["thumbprint"]
    assert added["name"] == "srv" and len(thumbprint) == 40
    table = served.ok("cert", "list").splitlines()
    assert table[0].split()[:1] == ["name"] and "thumbprint" in table[0]
    assert any(line.split()[0] == "srv" and thumbprint in line for line in table[1:])
    shown = served.ok("cert", "show", "srv")
    assert "CN=api.cli.test" in shown and thumbprint in shown
    listed = json.loads(served.ok("cert", "list", "--output", "json"))
    assert [c["properties"]["thumbprint"] for c in listed if c["name"] == "srv"] == [thumbprint]
    assert PASSWORD not in json.dumps(listed) and "data" not in listed[0]["properties"]


def test_cert_add_with_password_on_stdin(served: Served, files) -> None:
    served.ok("cert", "add", "cli", "--pfx", str(files["client_pfx"]), "--password-stdin",
              stdin=PASSWORD + "\n")  # fmt: skip
    shown = json.loads(served.ok("cert", "show", "cli", "--output", "json"))
    assert shown["properties"]["subject"] == "CN=cli client"


def test_wrong_password_fails_in_one_line_without_the_password(served: Served, files) -> None:
    wrong = "not-the-Right-one-77"
    result = served.cli("cert", "add", "bad", "--pfx", str(files["client_pfx"]),
                        "--password-stdin", stdin=wrong + "\n")  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "password" in result.stderr.lower()
    assert wrong not in result.stderr + result.stdout


def test_hostname_set_and_deleting_its_certificate_names_the_referrer(
    served: Served, files
) -> None:
    served.ok("cert", "add", "hostsrv", "--pfx", str(files["server_pfx"]),
              "--password-file", str(files["password"]))  # fmt: skip
    configs = json.loads(
        served.ok("hostname", "set", "api.cli.test", "--certificate", "hostsrv",
                  "--negotiate-client-certificate", "--output", "json")
    )  # fmt: skip
    entry = next(c for c in configs if c["hostName"] == "api.cli.test")
    assert entry["certificateId"] == "hostsrv" and entry["negotiateClientCertificate"] is True
    result = served.cli("cert", "delete", "hostsrv")
    assert result.returncode != 0
    assert "CertificateInUse" in result.stderr and "service" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "hostsrv" in served.ok("cert", "list")


def test_cert_delete_of_an_unused_certificate(served: Served, files) -> None:
    served.ok("cert", "add", "gone", "--pfx", str(files["client_pfx"]),
              "--password-file", str(files["password"]))  # fmt: skip
    served.ok("cert", "delete", "gone")
    assert served.cli("cert", "show", "gone").returncode != 0


def test_ca_add_list_delete(served: Served, files) -> None:
    added = json.loads(
        served.ok("ca", "add", str(files["root"]), "--store", "root", "--output", "json")
    )
    assert [c["storeName"] for c in added] == ["Root"]
    thumbprint = added[0]["thumbprint"]
    table = served.ok("ca", "list")
    assert "Root" in table and thumbprint in table and "CN=CLI Root" in table
    served.ok("ca", "delete", thumbprint.lower())
    assert thumbprint not in served.ok("ca", "list")
    missing = served.cli("ca", "delete", thumbprint)
    assert missing.returncode != 0 and thumbprint in missing.stderr


def test_api_and_operation_lifecycle(served: Served) -> None:
    served.ok("api", "create", "orders", "--path", "orders", "--service-url",
              "http://127.0.0.1:9/orders")  # fmt: skip
    operation = served.ok("operation", "add", "orders", "get", "--method", "get",
                          "--url-template", "/{id}", "--output", "json")  # fmt: skip
    assert json.loads(operation)["properties"]["method"] == "GET"
    listed = served.ok("api", "list")
    assert any(line.split()[0] == "orders" for line in listed.splitlines()[1:])
    shown = json.loads(served.ok("api", "show", "orders", "--output", "json"))
    assert shown["properties"]["path"] == "orders"
    assert shown["properties"]["serviceUrl"] == "http://127.0.0.1:9/orders"
    served.ok("api", "delete", "orders")
    assert served.cli("api", "show", "orders").returncode != 0


def test_backend_create_with_certificate_and_skip_flags(served: Served, files) -> None:
    served.ok("cert", "add", "gw", "--pfx", str(files["client_pfx"]),
              "--password-file", str(files["password"]))  # fmt: skip
    created = json.loads(
        served.ok("backend", "create", "b1", "--url", "https://backend.cli.test:8443",
                  "--certificate", "gw", "--skip-certificate-chain-validation",
                  "--skip-certificate-name-validation", "--output", "json")
    )  # fmt: skip
    properties = created["properties"]
    assert properties["url"] == "https://backend.cli.test:8443"
    assert properties["credentials"]["certificateIds"] == ["gw"]
    assert properties["tls"] == {
        "validateCertificateChain": False,
        "validateCertificateName": False,
    }
    result = served.cli("cert", "delete", "gw")
    assert result.returncode != 0 and "backends/b1" in result.stderr


def test_policy_set_and_show(served: Served, files) -> None:
    served.ok("api", "create", "guarded", "--path", "guarded", "--service-url",
              "http://127.0.0.1:9")  # fmt: skip
    policy = files["directory"] / "policy.xml"
    policy.write_text(deny_when(UNVERIFIED))
    served.ok("policy", "set", "--api", "guarded", str(policy))
    shown = served.ok("policy", "show", "--api", "guarded")
    assert "context.Request.Certificate.Verify()" in shown and "<return-response>" in shown
    broken = files["directory"] / "broken.xml"
    broken.write_text("<policies><inbound><no-such-element /></inbound></policies>")
    result = served.cli("policy", "set", "--api", "guarded", str(broken))
    assert result.returncode != 0 and "no-such-element" in result.stderr


def test_api_gateway_credentials_are_written_into_the_policy(served: Served, files) -> None:
    served.ok("cert", "add", "creds", "--pfx", str(files["client_pfx"]),
              "--password-file", str(files["password"]))  # fmt: skip
    served.ok("api", "create", "credentialed", "--path", "credentialed", "--service-url",
              "https://127.0.0.1:9")  # fmt: skip
    served.ok("api", "set-credentials", "credentialed", "--certificate", "creds")
    shown = served.ok("policy", "show", "--api", "credentialed")
    assert '<authentication-certificate certificate-id="creds"/>' in shown
    result = served.cli("cert", "delete", "creds")
    assert result.returncode != 0 and "apis/credentialed/policies/policy" in result.stderr
    served.ok("api", "set-credentials", "credentialed", "--none")
    assert "authentication-certificate" not in served.ok("policy", "show", "--api", "credentialed")
    served.ok("cert", "delete", "creds")


@pytest.mark.parametrize("path", ["a/../b", "a//b", "%61pi", "a%2Fb", "a b"])
def test_an_api_path_no_request_could_match_is_refused(served: Served, path: str) -> None:
    """Requests are routed on their normalised path: an API path must be normalised too."""
    with served.http() as client:
        response = client.put("/apis/unmatchable", json={"properties": {"path": path}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "is not a normalised URL path" in error["message"]
    assert error["details"][0]["target"] == "path"
