"""Policies, named values, products and fragments through the live management API (HTTPS)."""

from __future__ import annotations

import base64
import xml.parsers.expat

import pytest

from certgate.management import policies as kinds
from certgate.management.certificates import CERTIFICATES
from certgate.management.kinds import Kind, KindRegistry, Validated
from certgate.policy.documents import PolicyDocuments
from tests import pki
from tests.management.server import management_server
from tests.policy.support import RecordingForwarder, make_context

RAW_POLICY = """<policies>
    <inbound>
        <base />
        <set-header name="X-Who" exists-action="override">
            <value>@(context.Request.Headers.GetValueOrDefault("User-Agent", "") + "&<b>")</value>
        </set-header>
    </inbound>
</policies>"""


def _stub(name: str, pattern: str) -> Kind:
    """Stand-ins for kinds other modules own (APIs, operations, backends)."""
    return Kind(name, pattern, f"Microsoft.ApiManagement/service/{name}s", lambda r: Validated({}))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    registry = KindRegistry()
    for kind in (
        CERTIFICATES,
        kinds.GLOBAL_POLICY,
        kinds.PRODUCT_POLICY,
        kinds.API_POLICY,
        kinds.OPERATION_POLICY,
        kinds.FRAGMENTS,
        kinds.NAMED_VALUES,
        kinds.PRODUCTS,
        kinds.PRODUCT_APIS,
        _stub("api", "apis/{apiId}"),
        _stub("operation", "apis/{apiId}/operations/{operationId}"),
        _stub("backend", "backends/{backendId}"),
    ):
        registry.register(kind)
    directory = tmp_path_factory.mktemp("management")
    with management_server(directory, kinds=registry) as running, running.client() as http:
        for path in ("/apis/a", "/apis/a/operations/o", "/backends/b1"):
            assert http.put(path, json={"properties": {}}).status_code in (200, 201)
        yield running, http


@pytest.fixture
def client(server):
    return server[1]


def _policy(value: str, fmt: str = "rawxml") -> dict:
    return {"properties": {"format": fmt, "value": value}}


def test_raw_policy_is_stored_and_returned_in_both_formats(client) -> None:
    put = client.put("/apis/a/policies/policy", json=_policy(RAW_POLICY))
    assert put.status_code in (200, 201), put.text
    raw = client.get("/apis/a/policies/policy", params={"format": "rawxml"}).json()
    assert raw["properties"] == {"format": "rawxml", "value": RAW_POLICY}
    escaped = client.get("/apis/a/policies/policy").json()["properties"]
    assert escaped["format"] == "xml"
    xml.parsers.expat.ParserCreate().Parse(escaped["value"], True)  # well-formed
    assert "&quot;User-Agent&quot;" in escaped["value"]
    # The well-formed spelling can be PUT back and means the same document.
    again = client.put("/apis/a/policies/policy", json=_policy(escaped["value"], "xml"))
    assert again.status_code == 200
    raw = client.get("/apis/a/policies/policy", params={"format": "rawxml"}).json()
    assert raw["properties"]["value"] == RAW_POLICY
    arm = (
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/n"
        "/apis/a/operations/o/policies/policy"
    )
    put = client.put(arm, params={"api-version": "2024-05-01"}, json=_policy(RAW_POLICY))
    assert put.status_code in (200, 201), put.text  # 200 when another test created it first
    stored = client.get(arm, params={"api-version": "2024-05-01"}).json()
    assert stored["properties"]["value"] == escaped["value"]


def test_invalid_policy_is_refused_with_apims_message_and_not_stored(client) -> None:
    document = """<policies>
    <inbound>
        <base />
    <set-backend-service backend-id="missing" />
    </inbound>
</policies>"""
    before = client.get("/policies/policy")
    response = client.put("/policies/policy", json=_policy(document))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert error["message"] == (
        "Error in element 'set-backend-service' on line 4, column 4: "
        "Backend with id 'missing' could not be found."
    )
    assert error["details"][0]["target"] == "set-backend-service"
    after = client.get("/policies/policy")  # as it was: the module's tests share one store
    assert (after.status_code, after.content) == (before.status_code, before.content)
    response = client.put("/policies/other", json=_policy("<policies/>"))
    assert response.status_code == 400


def test_secret_named_values_are_never_returned_and_references_block_deletion(client) -> None:
    put = client.put(
        "/namedValues/nv1",
        json={"properties": {"displayName": "backendKey", "value": "s3cret!", "secret": True}},
    )
    assert put.status_code == 201, put.text
    assert "s3cret!" not in put.text
    shown = client.get("/namedValues/nv1").json()["properties"]
    assert shown == {"displayName": "backendKey", "secret": True, "tags": []}
    listed = client.get("/namedValues").text
    assert "s3cret!" not in listed

    missing = _policy(RAW_POLICY.replace("<base />", "<set-variable name='k' value='{{nope}}'/>"))
    response = client.put("/products/p1", json={"properties": {"displayName": "P"}})
    assert response.status_code == 201
    refused = client.put("/products/p1/policies/policy", json=missing)
    assert refused.status_code == 400
    assert "Named value 'nope' could not be found" in refused.json()["error"]["message"]

    using = _policy(
        RAW_POLICY.replace("<base />", "<set-variable name='k' value='{{backendKey}}'/>")
    )
    assert client.put("/products/p1/policies/policy", json=using).status_code == 201
    etag = client.get("/namedValues/nv1").headers["ETag"]
    blocked = client.delete("/namedValues/nv1", headers={"If-Match": etag})
    assert blocked.status_code == 409
    assert blocked.json()["error"]["details"][0]["target"] == "products/p1/policies/policy"
    assert "s3cret!" not in blocked.text


def test_certificate_used_by_a_policy_cannot_be_deleted(client) -> None:
    issued = pki.ca("Backend Client").issue("backend-client")
    data = base64.b64encode(issued.pfx("pw")).decode()
    put = client.put("/certificates/c1", json={"properties": {"data": data, "password": "pw"}})
    assert put.status_code == 201, put.text
    for attribute in ("certificate-id='c1'", f"thumbprint='{issued.thumbprint.lower()}'"):
        document = (
            f"<policies><inbound><authentication-certificate {attribute}/></inbound></policies>"
        )
        saved = client.put("/apis/a/policies/policy", json=_policy(document))
        assert saved.status_code in (200, 201), saved.text  # 201 when no earlier test made one
        etag = client.get("/certificates/c1").headers["ETag"]
        response = client.delete("/certificates/c1", headers={"If-Match": etag})
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "CertificateInUse"
    unknown = (
        "<policies><inbound><authentication-certificate certificate-id='c9'/></inbound></policies>"
    )
    response = client.put("/apis/a/policies/policy", json=_policy(unknown))
    assert response.status_code == 400
    assert "Certificate with id 'c9' could not be found" in response.json()["error"]["message"]


def test_fragments_products_and_links(client) -> None:
    fragment = (
        "<fragment><set-header name='X-F' exists-action='override'>"
        "<value>1</value></set-header></fragment>"
    )
    assert client.put("/policyFragments/f1", json=_policy(fragment)).status_code == 201
    bad = client.put("/policyFragments/f2", json=_policy("<fragment><nope/></fragment>"))
    assert bad.status_code == 400
    assert "Unknown policy element 'nope'" in bad.json()["error"]["message"]

    document = "<policies><inbound><include-fragment fragment-id='f1'/></inbound></policies>"
    assert client.put(
        "/apis/a/operations/o/policies/policy", json=_policy(document)
    ).status_code in (200, 201)
    etag = client.get("/policyFragments/f1").headers["ETag"]
    assert client.delete("/policyFragments/f1", headers={"If-Match": etag}).status_code == 409

    assert (
        client.put(
            "/products/p2", json={"properties": {"displayName": "Two", "state": "published"}}
        ).status_code
        == 201
    )
    assert client.put("/products/p2/apis/a").status_code == 201
    assert client.put("/products/p2/apis/zzz").status_code == 400
    assert [v["name"] for v in client.get("/products/p2/apis").json()["value"]] == ["a"]
    refused = client.put("/products/p3", json={"properties": {"state": "published"}})
    assert (
        refused.status_code == 400
        and refused.json()["error"]["details"][0]["target"] == "displayName"
    )


async def test_stored_documents_compile_into_the_operation_pipeline(server) -> None:
    running, client = server
    header = "<set-header name='X-Scope' exists-action='append'><value>{}</value></set-header>"
    for path, scope in (
        ("/policies/policy", "global"),
        ("/products/p9/policies/policy", "product"),
        ("/apis/a/policies/policy", "api"),
        ("/apis/a/operations/o/policies/policy", "operation"),
    ):
        if scope == "product":
            assert client.put("/products/p9", json={"properties": {"displayName": "9"}}).is_success
            assert client.put("/products/p9/apis/a").is_success
        inbound = ("<base />" if scope != "global" else "") + header.format(scope)
        document = f"<policies><inbound>{inbound}</inbound></policies>"
        assert client.put(path, json=_policy(document)).is_success
    documents = PolicyDocuments(running.store)
    assert "p9" in documents.products_of("a")
    forwarder = RecordingForwarder()
    await documents.pipeline("a", "o", "p9").run(make_context(), forwarder)
    sent = [v for k, v in forwarder.calls[0].headers if k == "X-Scope"]
    assert sent == ["global", "product", "api", "operation"]


async def test_a_stored_policy_broken_by_a_named_value_change_fails_closed(server) -> None:
    running, client = server
    assert client.put("/apis/broken", json={"properties": {}}).is_success
    named = {"displayName": "targetUrl", "value": "https://ok.example"}
    assert client.put("/namedValues/url", json={"properties": named}).is_success
    document = (
        "<policies><inbound><set-backend-service base-url='{{targetUrl}}'/></inbound></policies>"
    )
    assert client.put("/apis/broken/policies/policy", json=_policy(document)).is_success
    forwarder = RecordingForwarder()
    await PolicyDocuments(running.store).pipeline("broken", None).run(make_context(), forwarder)
    assert forwarder.calls[0].url.startswith("https://ok.example")

    named["value"] = "not a url"
    assert client.put("/namedValues/url", json={"properties": named}).is_success
    context = make_context()
    response = await PolicyDocuments(running.store).pipeline("broken", None).run(context, forwarder)
    assert response.StatusCode == 500
    assert (context.LastError.Source, context.LastError.Reason) == (
        "configuration",
        "PolicyInvalid",
    )
    assert len(forwarder.calls) == 1


@pytest.mark.parametrize(
    ("element", "message"),
    [
        (
            '<set-header name="X-A&#13;&#10;X-Injected" exists-action="override">'
            "<value>v</value></set-header>",
            "Attribute 'name': 'X-A\\r\\nX-Injected' is not a valid header name",
        ),
        (
            '<set-header name="Transfer-Encoding " exists-action="override">'
            "<value>chunked</value></set-header>",
            "Attribute 'name': 'Transfer-Encoding ' is not a valid header name",
        ),
        (
            '<set-header name="X-A" exists-action="override">'
            "<value>ok&#13;&#10;X-Injected: yes</value></set-header>",
            "Element 'value': The header value contains a CR, LF or NUL character.",
        ),
        (
            '<set-header name="Host" exists-action="override">'
            "<value>backend.example/x</value></set-header>",
            "Element 'value': 'backend.example/x' is not a valid Host (host[:port]).",
        ),
        (
            '<set-status code="200" reason="OK&#13;&#10;X-Injected: yes"/>',
            "Attribute 'reason': The reason phrase contains a CR, LF or NUL character.",
        ),
        ("<set-method>GET /x HTTP/1.1</set-method>", "'GET /x HTTP/1.1' is not a valid HTTP"),
        (
            '<return-response><set-header name="X&#10;Y" exists-action="override">'
            "<value>v</value></set-header></return-response>",
            "Attribute 'name': 'X\\nY' is not a valid header name",
        ),
        (
            '<rate-limit calls="5" renewal-period="60" retry-after-header-name="X&#10;Y"/>',
            "Attribute 'retry-after-header-name': 'X\\nY' is not a valid header name",
        ),
        (
            '<mock-response status-code="200" content-type="a&#13;&#10;X-Injected: 1"/>',
            "Attribute 'content-type': The header value contains a CR, LF or NUL character.",
        ),
        (
            "<cors><allowed-origins><origin>https://a&#10;X-Injected: 1</origin>"
            "</allowed-origins></cors>",
            "The header value contains a CR, LF or NUL character.",
        ),
    ],
)
def test_a_constant_that_would_split_a_head_is_refused_at_save_time(
    client, element: str, message: str
) -> None:
    document = f"<policies><inbound>{element}</inbound></policies>"
    path = "/apis/a/operations/o/policies/policy"
    before = client.get(path, params={"format": "rawxml"}).text
    response = client.put(path, json=_policy(document))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert message in error["message"]
    tag = element[1:].split(" ", 1)[0].split(">", 1)[0]
    inner = "set-header" if tag == "return-response" else tag
    assert error["details"][0]["target"] == inner
    assert client.get(path, params={"format": "rawxml"}).text == before  # nothing stored
