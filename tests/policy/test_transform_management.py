"""Save-time validation of the transformation and utility policies, and operation response
examples, through the live management API (HTTPS): a 400 naming the element or field, nothing
stored."""

from __future__ import annotations

import pytest

from tests.management.server import management_server

POLICY = "/apis/a/operations/o/policies/policy"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("transforms")
    with management_server(directory) as running, running.client() as http:
        assert http.put("/apis/a", json={"properties": {"path": "a"}}).status_code == 201
        operation = {"properties": {"method": "GET", "urlTemplate": "/o"}}
        assert http.put("/apis/a/operations/o", json=operation).status_code == 201
        yield http


def _document(inbound: str = "", outbound: str = "") -> dict:
    value = f"<policies><inbound>{inbound}</inbound><outbound>{outbound}</outbound></policies>"
    return {"properties": {"format": "rawxml", "value": value}}


@pytest.mark.parametrize(
    ("inbound", "outbound", "message"),
    [
        ('<find-and-replace from="" to="x"/>', "", "Attribute 'from' must not be empty."),
        ('<find-and-replace from="x"/>', "", "Required attribute 'to' is missing."),
        ("", '<xml-to-json kind="pretty" apply="always"/>', "Attribute 'kind' must be one of"),
        ("", '<xml-to-json kind="direct"/>', "Required attribute 'apply' is missing."),
        (
            '<json-to-xml apply="content-type-xml"/>',
            "",
            "Attribute 'apply' must be one of always, content-type-json",
        ),
        (
            '<json-to-xml apply="always" namespace-separator="::"/>',
            "",
            "Attribute 'namespace-separator' must be one character.",
        ),
        (
            '<json-to-xml apply="always" parse-date="maybe"/>',
            "",
            "Attribute 'parse-date' must be one of true, false",
        ),
        ('<set-body template="liquid">{% for x in y %}</set-body>', "", "Liquid template:"),
        ('<set-body template="liquid" xsi-nil="none">x</set-body>', "", "Attribute 'xsi-nil'"),
        ('<mock-response index="-1"/>', "", "Attribute 'index' must be 0 or more."),
        ('<mock-response status-code="700"/>', "", "'700' is not a valid HTTP status code."),
        ('<emit-metric name="m"/>', "", "needs at least one 'dimension'"),
        (
            '<emit-metric name="m"><dimension name="Color"/></emit-metric>',
            "",
            "Dimension 'Color' needs a value",
        ),
        (
            '<emit-metric name="m" value="lots"><dimension name="API ID"/></emit-metric>',
            "",
            "Attribute 'value' must be a number",
        ),
        ('<wait for="some"/>', "", "Attribute 'for' must be one of all, any"),
        ("<wait><set-variable name='a' value='1'/></wait>", "", "not allowed inside 'wait'"),
        ('<proxy url="ftp://127.0.0.1:3128"/>', "", "not a valid proxy URL"),
        ('<proxy url="http://u:pw@127.0.0.1:3128"/>', "", "may not hold credentials"),
        ("", '<proxy url="http://127.0.0.1:3128"/>', "not allowed in the 'outbound' section"),
    ],
)
def test_invalid_elements_are_refused_when_saved(client, inbound, outbound, message) -> None:
    response = client.put(POLICY, json=_document(inbound, outbound))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert message in error["message"]
    assert "pw" not in error["message"]
    assert client.get(POLICY).status_code == 404


def test_valid_elements_are_saved(client) -> None:
    inbound = (
        '<find-and-replace from="a" to="b"/><json-to-xml apply="always" '
        'consider-accept-header="false" namespace-separator=":" namespace-prefix="xmlns" '
        'attribute-block-name="#attrs"/><set-body template="liquid">{{ body.a }}</set-body>'
        '<emit-metric name="m" namespace="n" value="2"><dimension name="API ID"/></emit-metric>'
        '<wait for="any"><choose><when condition="@(true)"/></choose></wait>'
        '<proxy url="http://127.0.0.1:3128" username="u" password="p"/>'
        '<mock-response status-code="200" content-type="application/json" index="1"/>'
    )
    outbound = '<xml-to-json kind="javascript-friendly" apply="content-type-xml"/>'
    response = client.put("/apis/a/policies/policy", json=_document(inbound, outbound))
    assert response.status_code in (200, 201), response.text


RESPONSES = [
    {
        "statusCode": 200,
        "representations": [
            {"contentType": "application/json", "examples": {"default": {"value": {"id": 1}}}}
        ],
    }
]


def test_operation_response_examples_are_stored(client) -> None:
    operation = {"properties": {"method": "GET", "urlTemplate": "/r", "responses": RESPONSES}}
    assert client.put("/apis/a/operations/r", json=operation).status_code == 201
    stored = client.get("/apis/a/operations/r").json()["properties"]
    assert stored["responses"] == RESPONSES


@pytest.mark.parametrize(
    ("responses", "message"),
    [
        ({"statusCode": 200}, "'responses' must be an array."),
        ([{"statusCode": "200"}], "'responses[0].statusCode' must be an HTTP status code"),
        (
            [{"statusCode": 200, "representations": [{"contentType": "a\r\nb"}]}],
            "'responses[0].representations[0].contentType' must be a media type.",
        ),
        (
            [{"statusCode": 200, "representations": [{"contentType": "a/b", "examples": [1]}]}],
            "'responses[0].representations[0].examples' must map example names",
        ),
    ],
)
def test_invalid_response_examples_are_refused(client, responses, message) -> None:
    operation = {"properties": {"method": "GET", "urlTemplate": "/bad", "responses": responses}}
    response = client.put("/apis/a/operations/bad", json=operation)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["target"] == "responses"
    assert message in error["message"]
    assert client.get("/apis/a/operations/bad").status_code == 404
