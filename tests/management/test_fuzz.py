"""The fuzz gate: requests generated from the management API's own OpenAPI document never get a 500.

Bounded and reproducible (`derandomize`, a fixed number of examples) so it can run in the default
suite: every path and method of the document, ids from a small pool (so writes hit existing
resources) or arbitrary text, bodies valid for the kind's schema or arbitrary JSON or bytes, and
hostile query parameters. Every refusal must be the ARM JSON error shape.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.management.server import management_server

ARM_ROOT = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/n"
IDS = st.one_of(
    st.sampled_from(["a", "A", "b", "policy", "p1", ".", "..", "x" * 300, "~a", "a.b"]),
    st.text(min_size=1, max_size=24),
)
HOSTILE_VALUES = st.sampled_from(
    ["²", "9" * 5000, "-1", "0", "1e3", "not " * 200 + "name eq 'a'", "(" * 100 + ")" * 100,
     "name eq", "contains(name,'a')", "2024-05-01", "1999-01-01", "true", "rawxml", ""]
)  # fmt: skip
QUERY = st.dictionaries(
    st.sampled_from(
        ["$filter", "$top", "$skip", "api-version", "format", "export", "isKeyVaultRefreshFailed"]
    ),
    st.one_of(HOSTILE_VALUES, st.text(max_size=30)),
    min_size=1,
    max_size=3,
)
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
VALID_FIELDS = b'"displayName": "d", "path": "p", "method": "GET", "urlTemplate": "/u"'
RAW_BODIES = st.sampled_from(
    [b"", b"null", b"[]", b"{", b'{"properties": []}', b'{"properties": NaN}',
     b'{"properties": {' + VALID_FIELDS + b', "value": "\\ud800", "description": "\\udc00"}}',
     b'{"properties": {' + VALID_FIELDS + b', "value": NaN, "description": Infinity}}',
     b'{"properties": {' + VALID_FIELDS + b', "value": "v", "tags": [1e999]}}',
     b"[" * 5000 + b"]" * 5000, b"\xff\xfe"]
)  # fmt: skip


def _operations(document: dict) -> list[tuple[str, str, dict | None]]:
    schemas = document["components"]["schemas"]
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            schema = None
            if "requestBody" in operation:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                schema = schemas[ref.rsplit("/", 1)[1]]
            found.append((path, method.upper(), schema))
            if method == "get":
                found.append((path, "DELETE", None))
                found.append((path, "POST", None))
    return sorted(found, key=lambda f: (f[0], f[1]))


def _from_schema(schema: dict) -> st.SearchStrategy:
    """Values valid for the simple JSON schemas the kinds declare (enum, type, properties)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema.get("type")
    if isinstance(types, list):
        return st.one_of(*(_from_schema({**schema, "type": t}) for t in types))
    if types == "object" and "properties" in schema:
        fields = {k: _from_schema(v) for k, v in schema["properties"].items()}
        return st.fixed_dictionaries({}, optional=fields)
    if types == "array":
        return st.lists(_from_schema(schema.get("items", {})), max_size=3)
    simple = {
        "string": st.text(max_size=40),
        "boolean": st.booleans(),
        "integer": st.integers(),
        "number": st.floats(allow_nan=False, allow_infinity=False),
        "null": st.none(),
    }
    return simple.get(types, JSON_VALUES)


def _body(schema: dict | None):
    generated = [st.builds(lambda p: {"properties": p}, JSON_VALUES).map(json.dumps)]
    if schema is not None:
        generated.append(_from_schema(schema).map(json.dumps))
    return st.one_of(*generated).map(str.encode) | RAW_BODIES


def test_generated_requests_never_get_a_500(tmp_path):
    with management_server(tmp_path) as server, server.client(timeout=60) as client:
        operations = _operations(client.get("/openapi.json").json())

        @st.composite
        def requests(draw):
            path, method, schema = draw(st.sampled_from(operations))
            url = re.sub(r"\{[^}]+\}", lambda _: quote(draw(IDS), safe=""), path)
            query = draw(QUERY) if method == "GET" or draw(st.booleans()) else {}
            if draw(st.booleans()):
                url = ARM_ROOT + url
                query.setdefault("api-version", "2024-05-01")
            body = draw(_body(schema)) if method in ("PUT", "PATCH", "POST") else None
            headers = {
                "If-Match": draw(
                    st.sampled_from(
                        [
                            "*",
                            '"nope"',
                            "",
                            'W/"x"',
                        ]
                    )
                )
            }
            return method, url, query, body, headers

        @settings(
            max_examples=300,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(requests())
        def never_500(request) -> None:
            method, url, query, body, headers = request
            response = client.request(method, url, params=query, content=body, headers=headers)
            assert response.status_code < 500, (method, url, query, body, response.text)
            if response.status_code >= 400 and method != "HEAD":
                assert response.json()["error"]["code"], response.text
            if method in ("PUT", "PATCH") and response.status_code < 300:
                # What was accepted can be read back, alone and in its collection.
                for read in (url, url.rsplit("/", 1)[0]):
                    again = client.get(read, params={"api-version": "2024-05-01"})
                    assert again.status_code < 500, (method, url, body, read, again.text)

        never_500()
