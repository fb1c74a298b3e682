"""validate-content, validate-parameters, validate-headers, validate-status-code and
validate-odata-request through a real gateway and a real backend, configured through the real
management API: an OpenAPI import gives the operations' contract and the API schema, a service
XSD backs `schema-id`. prevent answers 400 (request) or 502 (response) with APIM's messages and
`context.LastError`; detect records in the errors variable and lets the request through."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest

from certgate.gateway.server import GatewayServer
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.errors import PolicyValidationError
from certgate.policy.loader import parse_document
from certgate.snapshot.compiler import SnapshotBuilder
from tests.management.server import management_server

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpora/apim-policies"
TOOLKIT = CORPUS / "Azure+azure-api-management-policy-toolkit/test/Test.Decompiling/TestData"

PET_XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="pet"><xs:complexType><xs:sequence>
    <xs:element name="name" type="xs:string"/><xs:element name="age" type="xs:int"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"""


def openapi(backend_url: str) -> dict:
    pet = {"$ref": "#/components/schemas/Pet"}
    return {
        "openapi": "3.0.1",
        "info": {"title": "Pets"},
        "servers": [{"url": backend_url}],
        "paths": {
            "/pets": {
                "post": {
                    "operationId": "addPet",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "maximum": 10},
                        },
                        {"name": "X-Trace", "in": "header", "schema": {"pattern": "^[a-z]+$"}},
                    ],
                    "requestBody": {"content": {"application/json": {"schema": pet}}},
                    "responses": {
                        "200": {
                            "description": "ok",
                            "headers": {
                                "X-Backend": {"schema": {"type": "string", "enum": ["yes"]}}
                            },
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/pets/{petId}": {
                "get": {
                    "operationId": "getPet",
                    "parameters": [
                        {
                            "name": "petId",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            },
        },
        "components": {
            "schemas": {
                "Pet": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 10},
                        "age": {"type": "integer"},
                    },
                }
            }
        },
    }


SHOW = (
    "<set-header name='X-{name}' exists-action='override'><value>"
    '@(JsonConvert.SerializeObject(context.Variables.GetValueOrDefault<object>("{var}", "")))'
    "</value></set-header>"
)
POLICY = f"""<policies><inbound>
<validate-parameters specified-parameter-action="prevent" unspecified-parameter-action="detect"
    errors-variable-name="paramErrors">
  <headers specified-parameter-action="prevent" unspecified-parameter-action="ignore"/>
</validate-parameters>
<validate-content unspecified-content-type-action="prevent" max-size="200"
    size-exceeded-action="prevent" errors-variable-name="bodyErrors">
  <content-type-map><type from="application/hal+json" to="application/json"/></content-type-map>
  <content type="application/json" validate-as="json" allow-additional-properties="false"
    action='@(context.Request.Headers.GetValueOrDefault("X-Mode", "prevent"))'/>
  <content type="application/xml" validate-as="xml" schema-id="pet-xsd" action="prevent"/>
</validate-content>
</inbound><backend><forward-request timeout="10"/></backend><outbound>
<choose><when condition='@(context.Request.Url.Query.GetValueOrDefault("status", "") != "")'>
  <set-status code='@(int.Parse(context.Request.Url.Query.GetValueOrDefault("status", "")))'
    reason="Set"/></when></choose>
<choose><when condition='@(context.Request.Url.Query.GetValueOrDefault("leak", "") == "1")'>
  <set-header name="X-Leak" exists-action="override"><value>stack trace</value></set-header>
</when></choose>
<validate-status-code unspecified-status-code-action="prevent" errors-variable-name="statusErrors">
  <status-code code="418" action="detect"/>
</validate-status-code>
<validate-headers specified-header-action="prevent" unspecified-header-action="detect"
    errors-variable-name="headerErrors">
  <header name="X-Leak" action="prevent"/>
</validate-headers>
{SHOW.format(name="Param-Errors", var="paramErrors")}
{SHOW.format(name="Body-Errors", var="bodyErrors")}
{SHOW.format(name="Status-Errors", var="statusErrors")}
</outbound><on-error>
<set-header name="X-Reason" exists-action="override">
  <value>@(context.LastError.Source + ":" + context.LastError.Reason)</value></set-header>
<set-header name="X-Message" exists-action="override">
  <value>@(context.LastError.Message)</value></set-header>
{SHOW.format(name="Body-Errors", var="bodyErrors")}
</on-error></policies>"""

ODATA = """<policies><inbound>
<validate-odata-request error-variable-name="odataErrors" min-odata-version="4.0"
    max-odata-version="4.0" max-size="10"/>
</inbound><backend><forward-request timeout="10"/></backend><outbound/><on-error>
<set-header name="X-Message" exists-action="override">
  <value>@(context.LastError.Message)</value></set-header>
</on-error></policies>"""


@pytest.fixture
async def gateway(certs, backend, tmp_path):
    """The management API configures the pets and odata APIs; the gateway serves the result."""
    with management_server(tmp_path / "mgmt") as management, management.client() as api:
        steps = [
            ("schemas/pet-xsd", {"schemaType": "xml", "value": PET_XSD}),
            (
                "apis/pets",
                {
                    "path": "pets",
                    "format": "openapi+json",
                    "value": json.dumps(openapi(backend.url)),
                },
            ),
            ("apis/pets/policies/policy", {"value": POLICY}),
            ("apis/odata", {"path": "odata", "serviceUrl": backend.url}),
            ("apis/odata/operations/all", {"method": "*", "urlTemplate": "/*"}),
            ("apis/odata/policies/policy", {"value": ODATA}),
        ]
        for path, properties in steps:
            answer = await asyncio.to_thread(api.put, f"/{path}", json={"properties": properties})
            assert answer.status_code in (200, 201), answer.text
        dev = certs.default_server
        builder = SnapshotBuilder(management.store, dev_server_pem=dev.cert_pem + dev.key_pem)
        config = await asyncio.to_thread(builder.build)
        assert config.snapshot.problems == ()
        server = GatewayServer(config)
        await server.start("127.0.0.1", 0)
        context = ssl.create_default_context(cadata=certs.ca.cert_pem.decode())
        base = f"https://localhost:{server.https_port}"
        try:
            async with httpx.AsyncClient(verify=context, base_url=base, timeout=30) as http:
                yield http
        finally:
            await server.close()
            builder.close()


def errors(response: httpx.Response, name: str) -> list[dict]:
    return json.loads(response.headers[f"x-{name}-errors"] or "[]")


async def test_a_body_that_conforms_passes_and_one_that_does_not_is_refused(gateway, backend):
    ok = await gateway.post("/pets/pets", json={"name": "rex", "age": 3})
    assert ok.status_code == 200, ok.text
    assert errors(ok, "body") == [] and backend.requests == 1

    bad = await gateway.post("/pets/pets", json={"age": "old"})
    assert bad.status_code == 400
    assert bad.headers["x-reason"] == "validate-content:Bad request"
    message = bad.json()["message"]
    assert message.startswith("Body of the request does not conform to the definition Pet, which")
    assert "application/json" in message and "'name' is a required property" in message
    [error] = errors(bad, "body")
    assert error["Type"] == "RequestBody" and error["ValidationRule"] == "IncorrectMessage"
    assert (error["Name"], error["Action"]) == ("application/json", "prevent")
    assert backend.requests == 1  # refused before the backend

    mapped = await gateway.post(
        "/pets/pets", content=b'{"name": 7}', headers={"Content-Type": "application/hal+json"}
    )
    assert mapped.status_code == 400 and "7 is not of type 'string'" in mapped.json()["message"]


async def test_detect_records_and_ignore_skips(gateway, backend):
    extra = {"name": "rex", "colour": "brown"}  # allow-additional-properties="false"
    detected = await gateway.post("/pets/pets", json=extra, headers={"X-Mode": "detect"})
    assert detected.status_code == 200
    [error] = errors(detected, "body")
    assert error["Action"] == "detect" and "'colour' was unexpected" in error["Details"]
    ignored = await gateway.post("/pets/pets", json=extra, headers={"X-Mode": "ignore"})
    assert ignored.status_code == 200 and errors(ignored, "body") == []
    assert backend.requests == 2


async def test_size_limit_and_unspecified_content_type(gateway):
    body = json.dumps({"name": "x" * 300}).encode()
    big = await gateway.post(
        "/pets/pets", content=body, headers={"Content-Type": "application/json"}
    )
    assert big.status_code == 400
    size = len(body)
    assert big.json()["message"] == (
        f"Request's body is {size} bytes long and it exceeds the limit of 200 bytes."
    )
    assert big.headers["x-message"].endswith("exceeds the configured limit of 200 bytes.")
    assert errors(big, "body")[0]["ValidationRule"] == "SizeLimit"
    plain = await gateway.post("/pets/pets", content=b"hi", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 400
    assert plain.json()["message"] == "Unspecified content type text/plain is not allowed."


async def test_xml_against_a_service_schema(gateway):
    xml = {"Content-Type": "application/xml"}
    good = await gateway.post(
        "/pets/pets", content=b"<pet><name>a</name><age>1</age></pet>", headers=xml
    )
    assert good.status_code == 200, good.text
    bad = await gateway.post(
        "/pets/pets", content=b"<pet><name>a</name><age>x</age></pet>", headers=xml
    )
    assert bad.status_code == 400
    message = bad.json()["message"]
    assert "definition pet-xsd" in message and "Line: 1, Position:" in message


async def test_parameters_against_the_contract(gateway):
    not_int = await gateway.get("/pets/pets/abc")
    assert not_int.status_code == 400
    assert not_int.json()["message"].startswith(
        "Value of the path parameter petId cannot be parsed according to the definition."
    )
    assert (await gateway.get("/pets/pets/7")).status_code == 200
    too_big = await gateway.post("/pets/pets?limit=50", json={"name": "a"})
    assert too_big.status_code == 400
    assert "query parameter limit does not conform" in too_big.json()["message"]
    twice = await gateway.post("/pets/pets?limit=1&limit=2", json={"name": "a"})
    assert twice.json()["message"] == (
        "Request cannot contain multiple values for the query parameter limit."
    )
    header = await gateway.post("/pets/pets", json={"name": "a"}, headers={"X-Trace": "ABC"})
    assert header.status_code == 400 and "header X-Trace does not conform" in header.text
    unknown = await gateway.post("/pets/pets?limit=2&debug=1", json={"name": "a"})
    assert unknown.status_code == 200
    [error] = errors(unknown, "param")
    assert error == {
        "Name": "debug",
        "Type": "QueryParameter",
        "ValidationRule": "Unspecified",
        "Details": "Unspecified query parameter debug is not allowed.",
        "Action": "detect",
    }


async def test_responses_outside_the_contract_are_stopped(gateway):
    hidden = await gateway.post("/pets/pets?status=500", json={"name": "a"})
    assert hidden.status_code == 502
    assert hidden.json()["message"] == (
        "The request could not be processed due to an internal error. Contact the API owner."
    )
    assert hidden.headers["x-reason"] == "validate-status-code:Response not allowed"
    assert hidden.headers["x-message"] == "Response status code 500 is not allowed."
    teapot = await gateway.post("/pets/pets?status=418", json={"name": "a"})
    assert teapot.status_code == 418
    assert errors(teapot, "status")[0]["Details"] == "Response status code 418 is not allowed."
    leak = await gateway.post("/pets/pets?leak=1", json={"name": "a"})
    assert leak.status_code == 502 and "stack trace" not in leak.text
    assert leak.headers["x-message"] == "Unspecified header X-Leak is not allowed."


async def test_odata_requests(gateway):
    assert (await gateway.get("/odata/People?$top=2&$filter=x")).status_code == 200
    newer = await gateway.get("/odata/People", headers={"OData-Version": "4.01"})
    assert newer.status_code == 400 and "4.01 is not allowed" in newer.json()["message"]
    negative = await gateway.get("/odata/People?$top=-1")
    assert negative.status_code == 400 and "non-negative" in negative.json()["message"]
    unknown = await gateway.get("/odata/People?$bogus=1")
    assert "not an OData system query option" in unknown.json()["message"]
    large = await gateway.post("/odata/People", content=b"x" * 11)
    assert large.status_code == 400 and "exceeds the limit of 10 bytes" in large.text


@pytest.mark.parametrize(
    "name",
    [
        "validate-content",
        "validate-parameters",
        "validate-headers",
        "validate-status-code",
        "validate-odata-request",
    ],
)
def test_corpus_documents_save(name):
    catalog = MemoryCatalog(schemas={"my-schema": {"schemaType": "json", "document": {}}})
    text = (TOOLKIT / f"{name}.xml").read_text(encoding="utf-8")
    parse_document(text, "api", catalog)


@pytest.mark.parametrize(
    ("element", "message"),
    [
        (
            "<validate-content unspecified-content-type-action='block' max-size='1' "
            "size-exceeded-action='detect'/>",
            "must be ignore, prevent or detect",
        ),
        (
            "<validate-content unspecified-content-type-action='detect' max-size='5000000' "
            "size-exceeded-action='detect'/>",
            "'max-size' must be a number of bytes",
        ),
        (
            "<validate-content unspecified-content-type-action='detect' max-size='10' "
            "size-exceeded-action='detect'><content validate-as='json' schema-id='nope'/>"
            "</validate-content>",
            "Schema with id 'nope' could not be found.",
        ),
        (
            "<validate-parameters specified-parameter-action='detect'/>",
            "'unspecified-parameter-action' is missing",
        ),
        ("<validate-odata-request max-odata-version='5.0'/>", "'max-odata-version' must be"),
    ],
)
def test_bad_configuration_is_refused_at_save(element, message):
    text = f"<policies><inbound>{element}</inbound></policies>"
    with pytest.raises(PolicyValidationError, match=message):
        parse_document(text, "api", MemoryCatalog())
