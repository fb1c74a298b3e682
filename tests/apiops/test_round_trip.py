"""`certgate export apiops` then `certgate import apiops` into an empty certgate: same config."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import yaml

from tests import pki
from tests.management.server import ManagementServer

PASSWORD = "round-Trip-7"
SPEC = """
openapi: 3.0.1
info: {title: Pets, description: Pets by id, version: "1"}
servers: [{url: "https://pets.backend.example.test/v1"}]
paths:
  /pets/{petId}:
    get:
      operationId: getPet
      summary: One pet
      parameters: [{name: petId, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok}}
  /pets:
    post:
      responses: {"201": {description: created}}
"""
GLOBAL = """<policies>
  <inbound><include-fragment fragment-id="stamp" /></inbound>
  <backend><forward-request /></backend>
  <outbound />
  <on-error />
</policies>"""
FRAGMENT = """<fragment>
  <set-header name="X-Stamp" exists-action="override"><value>{{plain}}</value></set-header>
</fragment>"""
API_POLICY = """<policies>
  <inbound>
    <base />
    <validate-client-certificate validate-revocation="false" validate-trust="true" />
    <set-header name="X-Token" exists-action="override"><value>{{secret-token}}</value></set-header>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""
OPERATION_POLICY = """<policies>
  <inbound>
    <base />
    <set-backend-service backend-id="secure" />
    <authentication-certificate certificate-id="backend-client" />
    <set-variable name="id" value="@(context.Request.MatchedParameters[&quot;petId&quot;])" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""
PRODUCT_POLICY = """<policies>
  <inbound><base /><set-header name="X-Product" exists-action="override">
  <value>gold</value></set-header></inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""


def _put(server: ManagementServer, path: str, properties: dict | None) -> None:
    with server.client(timeout=30) as http:
        body = {} if properties is None else {"properties": properties}
        reply = http.put(path, json=body)
        assert reply.is_success, f"PUT {path}: {reply.text}"


def _policy(xml: str) -> dict:
    return {"format": "rawxml", "value": xml}


def _upload(server: ManagementServer, pfx: bytes) -> None:
    data = base64.b64encode(pfx).decode()
    _put(server, "/certificates/backend-client", {"data": data, "password": PASSWORD})


def _populate(server: ManagementServer, pfx: bytes) -> None:
    """A configuration using every kind the artifacts carry."""
    _upload(server, pfx)
    _put(server, "/namedValues/plain", {"displayName": "plain", "value": "stamp-1"})
    _put(
        server,
        "/namedValues/secret-token",
        {"displayName": "secret-token", "value": "hunter2-secret", "secret": True},
    )
    _put(server, "/policyFragments/stamp", {**_policy(FRAGMENT), "description": "stamps"})
    _put(
        server,
        "/backends/secure",
        {
            "url": "https://secure.backend.example.test",
            "protocol": "http",
            "title": "Secure",
            "tls": {"validateCertificateChain": True, "validateCertificateName": False},
            "credentials": {"certificateIds": ["backend-client"]},
        },
    )
    _put(server, "/policies/policy", _policy(GLOBAL))
    _put(server, "/apis/pets", {"path": "pets", "format": "openapi", "value": SPEC})
    _put(
        server,
        "/apis/any",
        {"path": "any", "serviceUrl": "https://any.backend.example.test", "displayName": "Any"},
    )
    _put(server, "/apis/any/operations/all", {"method": "*", "urlTemplate": "/*"})
    _put(server, "/apis/pets/policies/policy", _policy(API_POLICY))
    _put(server, "/apis/pets/operations/getPet/policies/policy", _policy(OPERATION_POLICY))
    _put(server, "/products/gold", {"displayName": "Gold", "state": "published"})
    _put(server, "/products/gold/policies/policy", _policy(PRODUCT_POLICY))
    _put(server, "/products/gold/apis/pets", None)


COLLECTIONS = [
    "/namedValues",
    "/policyFragments",
    "/backends",
    "/certificates",
    "/policies",
    "/products",
    "/products/gold/apis",
    "/products/gold/policies",
    "/apis",
    "/apis/pets/operations",
    "/apis/any/operations",
    "/apis/pets/policies",
    "/apis/pets/operations/getpet/policies",
]


def _configuration(server: ManagementServer) -> dict[str, dict]:
    """Every resource by path, as the API presents it (policies as raw XML)."""
    out: dict[str, dict] = {}
    with server.client(timeout=30) as http:
        for collection in COLLECTIONS:
            for item in http.get(collection).json()["value"]:
                path = f"{collection}/{item['name']}"
                read = http.get(path, params={"format": "rawxml"}).json()
                out[path] = read["properties"]
    return out


def test_export_then_import_into_an_empty_certgate_is_the_same_configuration(
    source, target, source_cli, target_cli, tmp_path: Path
):
    client = pki.issue("backend client")
    pfx = client.pfx(PASSWORD)
    _populate(source, pfx)
    folder = tmp_path / "artifacts"
    source_cli.ok("export", "apiops", str(folder))

    # the publisher's file names and shapes
    for relative in (
        "policy.xml",
        "named values/plain/namedValueInformation.json",
        "named values/secret-token/namedValueInformation.json",
        "policy fragments/stamp/policyFragmentInformation.json",
        "policy fragments/stamp/policy.xml",
        "backends/secure/backendInformation.json",
        "products/gold/productInformation.json",
        "products/gold/policy.xml",
        "products/gold/apis/pets/productApiInformation.json",
        "apis/pets/apiInformation.json",
        "apis/pets/specification.yaml",
        "apis/pets/policy.xml",
        "apis/pets/operations/getpet/policy.xml",
        "certificates/backend-client/certificateInformation.json",
    ):
        assert (folder / relative).is_file(), relative
    info = json.loads((folder / "apis/pets/apiInformation.json").read_text())
    assert info["properties"]["path"] == "pets"
    spec = yaml.safe_load((folder / "apis/pets/specification.yaml").read_text())
    assert spec["paths"]["/pets/{petId}"]["get"]["operationId"] == "getpet"
    every_file = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    assert "hunter2-secret" not in every_file and "PRIVATE KEY" not in every_file

    # the target needs what artifacts never carry: the certificate and the secret value
    refused = target_cli.run("import", "apiops", str(folder))
    assert refused.returncode == 1
    assert "certificates/backend-client" in refused.stderr and "upload it" in refused.stderr
    assert "namedValues/secret-token" in refused.stderr and "nothing was written" in refused.stderr
    _upload(target, pfx)
    values = target_cli.write(
        "values.yaml",
        "namedValues:\n  - name: secret-token\n    properties:\n      value: hunter2-secret\n",
    )
    target_cli.ok("import", "apiops", str(folder), "--configuration", str(values))

    assert _configuration(target) == _configuration(source)
    assert len(_configuration(target)) == 16
    stored = target.store.get("namedValues/secret-token")
    assert stored.secrets == {"value": "hunter2-secret"} and "value" not in stored.properties

    # idempotent: a second import changes nothing, not even the revision
    revision = target.store.revision()
    again = target_cli.ok("import", "apiops", str(folder), "--output", "json")
    assert {row["action"] for row in json.loads(again)} == {"unchanged"}
    assert target.store.revision() == revision


def test_dry_run_lists_creates_updates_and_deletes_and_writes_nothing(
    source, source_cli, tmp_path: Path
):
    pfx = pki.issue("backend client").pfx(PASSWORD)
    _populate(source, pfx)
    folder = tmp_path / "artifacts"
    source_cli.ok("export", "apiops", str(folder))
    shutil.rmtree(folder / "products")
    (folder / "backends/secure/backendInformation.json").write_text(
        json.dumps({"properties": {"url": "https://moved.example.test", "title": "Moved"}})
    )
    (folder / "named values/extra").mkdir()
    (folder / "named values/extra/namedValueInformation.json").write_text(
        json.dumps({"properties": {"displayName": "extra", "value": "x"}})
    )
    (folder / "gateways/edge").mkdir(parents=True)
    (folder / "apis/soap").mkdir(parents=True)
    (folder / "apis/soap/apiInformation.json").write_text(
        json.dumps({"properties": {"path": "soap", "type": "soap"}})
    )
    (folder / "apis/soap/specification.wsdl").write_text("<definitions/>")
    (folder / "products/silver/apis/soap").mkdir(parents=True)
    (folder / "products/silver/productInformation.json").write_text(
        json.dumps({"properties": {"displayName": "Silver"}})
    )
    (folder / "products/silver/apis/soap/productApiInformation.json").write_text("{}")
    revision = source.store.revision()
    result = source_cli.run(
        "import", "apiops", str(folder), "--dry-run", "--delete-missing", "--output", "json"
    )
    assert result.returncode == 0, result.stderr
    actions = {row["resource"]: row["action"] for row in json.loads(result.stdout)}
    assert actions["namedValues/extra"] == "create"
    assert actions["backends/secure"] == "update"
    assert actions["apis/pets"] == "unchanged"
    assert actions["products/gold"] == actions["products/gold/apis/pets"] == "delete"
    assert "not imported (not a certgate kind): gateways" in result.stderr
    assert "not imported (not a certgate kind): apis/soap (type soap)" in result.stderr
    assert "apis/soap" not in actions and "products/silver/apis/soap" not in actions
    assert "not imported (not a certgate kind): products/silver/apis/soap" in result.stderr
    assert actions["products/silver"] == "create"
    assert source.store.revision() == revision

    # without --delete-missing nothing is deleted
    result = source_cli.run("import", "apiops", str(folder), "--output", "json")
    assert result.returncode == 0, result.stderr
    assert "delete" not in {row["action"] for row in json.loads(result.stdout)}
    with source.client(timeout=30) as http:
        assert http.get("/products/gold").status_code == 200
        assert http.get("/backends/secure").json()["properties"]["title"] == "Moved"
        assert http.get("/namedValues/extra").status_code == 200


def test_an_unreadable_folder_is_one_line_naming_the_file(source, source_cli, tmp_path: Path):
    folder = tmp_path / "artifacts"
    (folder / "backends/b").mkdir(parents=True)
    (folder / "backends/b/backendInformation.json").write_text("{not json")
    (folder / "apis/a").mkdir(parents=True)
    (folder / "apis/a/apiInformation.json").write_text('{"properties": {"path": "a"}}')
    (folder / "apis/a/policy.xml").write_bytes(b"\xff\xfe<policies/>")
    revision = source.store.revision()
    message = source_cli.fails("import", "apiops", str(folder))
    assert "apis/a/policy.xml: 'utf-8' codec can't decode" in message
    (folder / "apis/a/policy.xml").write_text("<policies/>")
    message = source_cli.fails("import", "apiops", str(folder))
    assert "backends/b/backendInformation.json: not JSON" in message
    assert "is not a directory" in source_cli.fails("import", "apiops", str(tmp_path / "absent"))
    assert source.store.revision() == revision
