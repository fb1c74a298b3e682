"""The `certgate` CLI as a subprocess against a live HTTPS management API: the commands an
operator needs for every kind, errors that are one line, and output that is safe for a terminal."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests import pki
from tests.e2e.serve import CERTGATE, client_env, free_port
from tests.management.server import ManagementServer, management_server

PASSWORD = "cli-Commands-9"


class Cli:
    def __init__(self, server: ManagementServer, directory: Path) -> None:
        self.server, self.directory = server, directory

    def run(self, *args: str, url: str | None = None, **options) -> subprocess.CompletedProcess:
        argv = [CERTGATE, *args, "--management-url", url or self.server.base_url]
        argv += ["--token", self.server.token, "--cacert", str(self.server.ca_file)]
        options.setdefault("stdout", subprocess.PIPE)
        return subprocess.run(
            argv, cwd=self.directory, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, timeout=60, env=client_env(), check=False, **options,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"certgate {' '.join(args)}: {result.stderr}"
        return result.stdout

    def fails(self, *args: str, **options) -> str:
        result = self.run(*args, **options)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        return result.stderr

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.directory / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return path


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli-commands")
    with management_server(directory / "server") as server:
        yield Cli(server, directory)


def _service_cas(cli: Cli) -> list[dict]:
    with cli.server.client(timeout=30) as http:
        return http.get("/").json()["properties"]["certificates"]


def test_ca_add_twice_then_delete_one_of_two(cli):
    roots = [pki.ca(f"CLI CA {n}") for n in (1, 2, 3)]
    files = [cli.write(f"ca{n}.pem", root.cert_pem) for n, root in enumerate(roots)]
    cli.write("ca2.der", roots[2].cert.public_bytes(Encoding.DER))
    cli.ok("ca", "add", str(files[0]))
    cli.ok("ca", "add", str(files[1]), "--store", "intermediate")
    listed = json.loads(cli.ok("ca", "add", str(cli.directory / "ca2.der"), "--output", "json"))
    assert [c["thumbprint"] for c in listed] == [r.thumbprint for r in roots]
    assert [c["storeName"] for c in listed] == ["Root", "CertificateAuthority", "Root"]

    cli.ok("ca", "delete", roots[0].thumbprint)
    kept = _service_cas(cli)
    assert [c["certificate"]["thumbprint"] for c in kept] == [r.thumbprint for r in roots[1:]]
    table = cli.ok("ca", "list")
    assert roots[0].thumbprint not in table and roots[1].thumbprint in table
    cli.ok("ca", "delete", roots[1].thumbprint.lower())
    cli.ok("ca", "delete", roots[2].thumbprint)
    assert _service_cas(cli) == []


def test_ca_add_of_a_key_or_garbage_is_one_line(cli):
    issued = pki.issue("key only")
    key = cli.write("client.key", issued.key_pem)
    assert "client.key is not a certificate" in cli.fails("ca", "add", str(key))
    junk = cli.write("junk.bin", b"\x00\x01 not der")
    assert "junk.bin is not a certificate" in cli.fails("ca", "add", str(junk))
    assert "No such file" in cli.fails("ca", "add", str(cli.directory / "missing.pem"))


def test_tables_escape_terminal_control_characters(cli):
    evil = pki.issue("evil\x1b]0;owned\x07\x1b[31mred\u202eboss")
    pfx = cli.write("evil.pfx", evil.pfx(PASSWORD))
    password = cli.write("password", PASSWORD)
    cli.ok("cert", "add", "evil", "--pfx", str(pfx), "--password-file", str(password))
    for output in (cli.ok("cert", "list"), cli.ok("cert", "show", "evil")):
        assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
        assert "\\x1b]0;owned\\x07\\x1b[31mred\\u202eboss" in output
    as_json = json.loads(cli.ok("cert", "show", "evil", "--output", "json"))
    assert "evil\x1b]0;owned\x07\x1b[31mred\u202eboss" in as_json["properties"]["subject"]
    cli.ok("cert", "delete", "evil")


def test_cert_list_shows_private_key_and_expiry(cli):
    with_key = pki.issue("with key")
    cli.write("pw", PASSWORD)
    cli.ok("cert", "add", "keyed", "--pfx", str(cli.write("keyed.pfx", with_key.pfx(PASSWORD))),
           "--password-file", str(cli.directory / "pw"))  # fmt: skip
    public = cli.write("public.pem", pki.issue("public only").cert_pem)
    cli.ok("cert", "add", "public", "--pfx", str(public))
    lines = cli.ok("cert", "list").splitlines()
    header = lines[0].split()
    assert "hasPrivateKey" in header and "expirationDate" in header
    rows = {line.split()[0]: line for line in lines[1:]}
    expiry = with_key.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "True" in rows["keyed"] and expiry in rows["keyed"]
    assert "False" in rows["public"]


def test_closed_pipe_is_quiet(cli):
    read, write = os.pipe()
    os.close(read)  # the reader (`| head`) is gone before certgate writes
    try:
        result = cli.run("api", "list", stdout=write)
    finally:
        os.close(write)
    assert result.stderr == "" and result.returncode == 141


def test_errors_are_printed_once_with_their_field(cli):
    cli.ok("api", "create", "errs", "--path", "errs", "--service-url", "http://127.0.0.1:9")
    refused = cli.fails("operation", "add", "errs", "o", "--method", "FOO", "--url-template", "/")
    assert "'method' must be one of" in refused and "not 'FOO'" in refused
    assert "required" not in refused and refused.count("must be one of") == 1
    missing = cli.fails("api", "show", "nope")
    assert missing.count("not found") == 1 and "nope" in missing


def test_connection_refused_names_the_url(cli):
    url = f"https://127.0.0.1:{free_port()}"
    error = cli.fails("api", "list", url=url)
    assert url in error and "refused" in error.lower()


def test_operation_hostname_and_policy_delete(cli):
    cli.ok("api", "create", "del", "--path", "del", "--service-url", "http://127.0.0.1:9")
    cli.ok("operation", "add", "del", "get", "--method", "GET", "--url-template", "/x")
    policy = cli.write("policy.xml", "<policies><inbound><base /></inbound></policies>")
    for scope in (["--api", "del"], ["--api", "del", "--operation", "get"], []):
        cli.ok("policy", "set", *scope, str(policy))
        assert "<base />" in cli.ok("policy", "show", *scope)
        cli.ok("policy", "delete", *scope)
        assert "not found" in cli.fails("policy", "show", *scope)
    cli.ok("operation", "delete", "del", "get")
    assert cli.ok("operation", "list", "del").strip() == "(none)"

    cli.ok("hostname", "set", "a.cli.test")
    cli.ok("hostname", "set", "b.cli.test")
    cli.ok("hostname", "delete", "A.cli.test")
    names = [h["hostName"] for h in json.loads(cli.ok("hostname", "list", "--output", "json"))]
    assert names == ["b.cli.test"]
    assert "no hostname configuration" in cli.fails("hostname", "delete", "a.cli.test")


def test_named_values_products_fragments_and_crls(cli):
    cli.ok("named-value", "set", "plain", "--value", "visible")
    cli.ok("named-value", "set", "hidden", "--value", "s3cret-value", "--secret")
    listed = cli.ok("named-value", "list")
    assert "visible" in listed and "s3cret-value" not in listed
    assert "s3cret-value" not in cli.ok("named-value", "show", "hidden", "--output", "json")

    cli.ok("api", "create", "sold", "--path", "sold", "--service-url", "http://127.0.0.1:9")
    cli.ok("product", "create", "gold", "--display-name", "Gold", "--published")
    cli.ok("product", "add-api", "gold", "sold")
    assert "sold" in cli.ok("product", "apis", "gold")
    assert (
        json.loads(cli.ok("product", "show", "gold", "--output", "json"))["properties"]["state"]
        == "published"
    )
    cli.ok("product", "remove-api", "gold", "sold")
    assert cli.ok("product", "apis", "gold").strip() == "(none)"

    fragment = cli.write("fragment.xml", "<fragment><set-header name='f'><value>{{plain}}</value>"
                         "</set-header></fragment>")  # fmt: skip
    cli.ok("fragment", "set", "frag", str(fragment), "--description", "shared")
    assert "frag" in cli.ok("fragment", "list")
    assert "policyFragments/frag" in cli.fails("named-value", "delete", "plain")

    issuer = pki.ca("CLI CRL CA")
    crl = cli.write("ca.crl", pki.crl(issuer, [7]).public_bytes(Encoding.DER))
    added = json.loads(cli.ok("crl", "add", "ca", str(crl), "--output", "json"))
    assert added["properties"]["revokedCount"] == 1
    assert "CLI CRL CA" in cli.ok("crl", "list")

    for command, name in (("crl", "ca"), ("fragment", "frag"), ("product", "gold"),
                          ("named-value", "plain"), ("named-value", "hidden")):  # fmt: skip
        cli.ok(command, "delete", name)
        assert "not found" in cli.fails(command, "show", name)
