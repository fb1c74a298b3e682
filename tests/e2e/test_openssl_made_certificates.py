"""Client certificates made by the openssl CLI the common ways, through `certgate serve` with curl.

A new user follows OpenSSL's manual, not certgate's test factory: `openssl x509 -req -CA` (a v1
certificate without extensions, so without key identifiers), `openssl req -addext` copied with
`-copy_extensions`, an intermediate CA made with `openssl ca`, and a CRL from `openssl ca -gencrl`
(which has no CRL number unless a crlnumber file is set). `openssl verify` accepts all of them,
so `Verify()` and `validate-client-certificate` must too (issue 13).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.conftest import Clients
from tests.e2e.serve import UNVERIFIED, EchoBackend, Served, client_env, deny_when
from tests.gateway.support import ClientFiles

NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
CA_CONFIG = """[ca]
default_ca = own
[own]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
default_days = 30
default_crl_days = 7
policy = anything
copy_extensions = copy
[anything]
commonName = supplied
[intermediate]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
"""
VALIDATE = """<policies><inbound><base />
<validate-client-certificate validate-revocation="true" validate-trust="true"
  validate-not-before="true" validate-not-after="true" ignore-error="false" />
</inbound><backend><base /></backend><outbound><base /></outbound>
<on-error><base /></on-error></policies>"""
UNVERIFIED_CHAIN = (
    "context.Request.Certificate == null || !context.Request.Certificate.VerifyNoRevocation()"
)


def _openssl(folder: Path, *args: str) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=folder, capture_output=True, text=True, timeout=30, env=client_env()
    )
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def _request(folder: Path, stem: str, subject: str, *extra: str) -> None:
    _openssl(
        folder, "req", "-new", *NEW_EC_KEY, "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
        "-subj", subject, *extra,
    )  # fmt: skip


def _sign_with_x509(folder: Path, stem: str, ca: str, *extra: str) -> None:
    """`openssl x509 -req -CA ca.pem -CAkey ca.key`: the README-style signing of a client."""
    _openssl(
        folder, "x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-days", "2", "-out", f"{stem}.pem", *extra,
    )  # fmt: skip


@dataclass
class OpensslPki:
    folder: Path
    root: Path
    v1: ClientFiles  # openssl x509 -req, no extensions at all
    addext: ClientFiles  # req -addext SAN/EKU/keyUsage, kept by x509 -copy_extensions
    chained: ClientFiles  # v1 leaf under an `openssl ca` intermediate; the file holds both
    revoked: ClientFiles  # the same, revoked in the intermediate's `openssl ca -gencrl` CRL
    crl: Path
    stranger: ClientFiles  # `openssl req -x509`: self-signed, trusted by nobody


def _with_chain(folder: Path, stem: str) -> ClientFiles:
    bundle = folder / f"{stem}-chain.pem"
    bundle.write_bytes((folder / f"{stem}.pem").read_bytes() + (folder / "inter.pem").read_bytes())
    return ClientFiles(bundle, folder / f"{stem}.key")


@pytest.fixture(scope="module")
def openssl_pki(tmp_path_factory) -> OpensslPki:
    folder = tmp_path_factory.mktemp("openssl-pki")
    _openssl(
        folder, "req", "-x509", *NEW_EC_KEY, "-keyout", "root.key", "-out", "root.pem",
        "-subj", "/CN=OpenSSL Made Root", "-days", "30",
    )  # fmt: skip
    _request(folder, "v1", "/CN=v1 client")
    _sign_with_x509(folder, "v1", "root")
    _request(
        folder, "addext", "/CN=addext client",
        "-addext", "subjectAltName=DNS:client.example,email:client@example.com",
        "-addext", "extendedKeyUsage=clientAuth",
        "-addext", "keyUsage=critical,digitalSignature",
    )  # fmt: skip
    _sign_with_x509(folder, "addext", "root", "-copy_extensions", "copy")
    (folder / "issued").mkdir()
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("1000\n")
    config = folder / "ca.cnf"
    config.write_text(CA_CONFIG.format(dir=folder))
    _request(folder, "inter", "/CN=OpenSSL Made Issuing CA")
    _openssl(
        folder, "ca", "-batch", "-config", str(config), "-extensions", "intermediate",
        "-cert", "root.pem", "-keyfile", "root.key", "-in", "inter.csr", "-out", "inter.pem",
    )  # fmt: skip
    (folder / "index.txt").write_text("")  # the intermediate keeps its own database
    for stem in ("chained", "revoked"):
        _request(folder, stem, f"/CN={stem} client")
        _openssl(
            folder, "ca", "-batch", "-config", str(config), "-cert", "inter.pem",
            "-keyfile", "inter.key", "-in", f"{stem}.csr", "-out", f"{stem}.pem",
        )  # fmt: skip
    _openssl(
        folder, "ca", "-config", str(config), "-cert", "inter.pem", "-keyfile", "inter.key",
        "-revoke", "revoked.pem",
    )  # fmt: skip
    _openssl(
        folder, "ca", "-config", str(config), "-cert", "inter.pem", "-keyfile", "inter.key",
        "-gencrl", "-out", "inter.crl",
    )  # fmt: skip
    _openssl(
        folder, "req", "-x509", *NEW_EC_KEY, "-keyout", "stranger.key", "-out", "stranger.pem",
        "-subj", "/CN=stranger", "-days", "2",
    )  # fmt: skip
    return OpensslPki(
        folder,
        folder / "root.pem",
        ClientFiles(folder / "v1.pem", folder / "v1.key"),
        ClientFiles(folder / "addext.pem", folder / "addext.key"),
        _with_chain(folder, "chained"),
        _with_chain(folder, "revoked"),
        folder / "inter.crl",
        ClientFiles(folder / "stranger.pem", folder / "stranger.key"),
    )


def _put(http, path: str, properties: dict) -> None:
    reply = http.put(path, json={"properties": properties})
    assert reply.is_success, f"PUT {path}: {reply.text}"


@pytest.fixture(scope="module")
def gateway(
    served: Served, backend: EchoBackend, clients: Clients, openssl_pki: OpensslPki
) -> Served:
    """Three APIs: `Verify()` (the README's policy), `VerifyNoRevocation()`, and
    `validate-client-certificate`; the openssl-made root as the only trust anchor and the
    intermediate's CRL uploaded as it came out of `openssl ca -gencrl`."""
    served.ok("ca", "add", str(openssl_pki.root), "--store", "root")
    served.ok("hostname", "set", "localhost", "--negotiate-client-certificate", "--default")
    operation = {"displayName": "all", "method": "*", "urlTemplate": "/*"}
    policies = {
        "verify": deny_when(UNVERIFIED),
        "chain": deny_when(UNVERIFIED_CHAIN),
        "validate": VALIDATE,
    }
    with served.http() as http:
        trust = {"clientCertificateTrust": {"useSystemRoots": False}}
        assert http.patch("/", json={"properties": trust}).is_success
        for name, policy in policies.items():
            _put(
                http,
                f"/apis/{name}",
                {"displayName": name, "path": name, "serviceUrl": backend.url},
            )
            _put(http, f"/apis/{name}/operations/all", operation)
            _put(http, f"/apis/{name}/policies/policy", {"format": "rawxml", "value": policy})
        _put(http, "/certificateRevocationLists/inter", {"data": openssl_pki.crl.read_text()})
    return served


def _statuses(gateway: Served, identity: ClientFiles) -> tuple[int, int, int]:
    return tuple(
        gateway.curl_status(f"/{api}/x", identity) for api in ("verify", "chain", "validate")
    )


def _leaf(identity: ClientFiles) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identity.cert.read_bytes())


def test_v1_certificate_from_openssl_x509_req_is_trusted(
    gateway: Served, openssl_pki: OpensslPki
) -> None:
    leaf = _leaf(openssl_pki.v1)
    assert leaf.version == x509.Version.v1 and len(leaf.extensions) == 0  # no AKI, no SKI
    assert _statuses(gateway, openssl_pki.v1) == (200, 200, 200)


def test_certificate_with_addext_extensions_is_trusted(
    gateway: Served, openssl_pki: OpensslPki
) -> None:
    extensions = {type(e.value) for e in _leaf(openssl_pki.addext).extensions}
    assert {x509.SubjectAlternativeName, x509.ExtendedKeyUsage, x509.KeyUsage} <= extensions
    assert _statuses(gateway, openssl_pki.addext) == (200, 200, 200)


def test_chain_through_an_openssl_ca_intermediate_and_its_crl(
    gateway: Served, openssl_pki: OpensslPki
) -> None:
    crl = x509.load_pem_x509_crl(openssl_pki.crl.read_bytes())
    with pytest.raises(x509.ExtensionNotFound):  # the CRL as `openssl ca -gencrl` makes it
        crl.extensions.get_extension_for_class(x509.CRLNumber)
    assert _statuses(gateway, openssl_pki.chained) == (200, 200, 200)
    assert _statuses(gateway, openssl_pki.revoked) == (403, 200, 401)


def test_untrusted_openssl_certificate_is_refused(
    gateway: Served, openssl_pki: OpensslPki, clients: Clients
) -> None:
    assert _statuses(gateway, openssl_pki.stranger) == (403, 403, 401)
    assert _statuses(gateway, clients.trusted) == (403, 403, 401)  # another root's client
