"""Property (issue 12): no accepted write leaves the gateway on an older revision.

Hypothesis generates sequences of writes over the kinds (APIs, operations, policies at the four
scopes, fragments, named values, backends, certificates, products and their links, hostnames, CA
certificates, CRLs, and deletes), valid and invalid ones, and sends them through the real
management app (in-process ASGI client, one fresh store per example, seeded with a configuration
whose resources reference each other). After every write:
- an accepted write: a Snapshot compiled from the store has no problem and the store's revision;
- a refused write: a 4xx (never a 5xx), and the store's rows and revision are exactly as before.
A last fresh builder compiles the same routes as the incremental one that followed the writes.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from certgate.management import create_management_app
from certgate.snapshot.compiler import SnapshotBuilder
from tests import pki
from tests.management.server import TOKEN, open_store

_CA = pki.ca("Property Test CA")
_PFX = base64.b64encode(_CA.issue("gateway.property.test").pfx("pw")).decode()
_CA_DER = base64.b64encode(_CA.der).decode()
_CRL = base64.b64encode(pki.crl(_CA, [7]).public_bytes(Encoding.DER)).decode()

APIS = st.sampled_from(["a", "b"])
SERVICE_URLS = st.sampled_from(
    ["https://backend.test", "http://127.0.0.1:9", "http://[::1", "https://a:99999/", "ftp://x"]
)
TEMPLATES = st.sampled_from(["/items", "/items/{id}", "/{a}/{a}", "/{a-b}/{a_b}", "/*", "/x?q={q}"])
NAMED_VALUES = st.sampled_from(["https://ok.test", "not a url", "<tag/>", "x"])
DOCUMENTS = st.sampled_from(
    [
        "<policies><inbound><base /></inbound></policies>",
        "<policies><inbound><set-backend-service base-url='{{target}}' /></inbound></policies>",
        "<policies><inbound><base /><set-backend-service backend-id='b1' /></inbound></policies>",
        "<policies><inbound><base /><include-fragment fragment-id='f1' /></inbound></policies>",
        "<policies><inbound><return-response><set-status code='403' /></return-response>"
        "</inbound></policies>",
        "<policies><inbound><unknown-policy /></inbound></policies>",
        "<policies><inbound>",
    ]
)
FRAGMENTS = st.sampled_from(
    [
        "<fragment><set-header name='X-F' exists-action='override'><value>{{target}}</value>"
        "</set-header></fragment>",
        "<fragment><set-backend-service base-url='{{target}}' /></fragment>",
        "<fragment><base /></fragment>",
    ]
)
POLICY_PATHS = st.sampled_from(
    [
        "policies/policy",
        "products/p1/policies/policy",
        "apis/a/policies/policy",
        "apis/a/operations/o1/policies/policy",
        "apis/b/operations/o2/policies/policy",
    ]
)
DELETABLE = st.sampled_from(
    [
        "apis/a",
        "apis/b",
        "apis/a/operations/o1",
        "namedValues/target",
        "backends/b1",
        "certificates/c1",
        "policyFragments/f1",
        "products/p1",
        "products/p1/apis/a",
        "apis/a/policies/policy",
        "policies/policy",
        "certificateRevocationLists/r1",
    ]
)


def _put(path: str, properties: dict) -> tuple[str, str, dict]:
    return "PUT", path, {"properties": properties}


WRITES = st.one_of(
    st.builds(
        lambda api, path, url: _put(f"apis/{api}", {"path": path, "serviceUrl": url}),
        APIS,
        st.sampled_from(["shop", "SHOP/", "other"]),
        SERVICE_URLS,
    ),
    st.builds(
        lambda api, op, method, url: _put(
            f"apis/{api}/operations/{op}", {"method": method, "urlTemplate": url}
        ),
        APIS,
        st.sampled_from(["o1", "o2"]),
        st.sampled_from(["GET", "POST", "*"]),
        TEMPLATES,
    ),
    st.builds(lambda path, value: _put(path, {"value": value}), POLICY_PATHS, DOCUMENTS),
    st.builds(lambda value: _put("policyFragments/f1", {"value": value}), FRAGMENTS),
    st.builds(
        lambda value: _put("namedValues/target", {"displayName": "target", "value": value}),
        NAMED_VALUES,
    ),
    st.builds(
        lambda url, certificate: _put(
            "backends/b1",
            {"url": url, **({"credentials": {"certificateIds": ["c1"]}} if certificate else {})},
        ),
        SERVICE_URLS,
        st.booleans(),
    ),
    st.just(_put("certificates/c1", {"data": _PFX, "password": "pw"})),
    st.just(_put("products/p1", {"displayName": "P1"})),
    st.builds(lambda api: ("PUT", f"products/p1/apis/{api}", {}), APIS),
    st.builds(
        lambda host, named: (
            "PATCH",
            "",
            {
                "properties": {
                    "hostnameConfigurations": [
                        {
                            "type": "Proxy",
                            "hostName": host,
                            **({"certificateId": "c1"} if named else {}),
                            "negotiateClientCertificate": True,
                        }
                    ]
                }
            },
        ),
        st.sampled_from(["gateway.property.test", "bad host!"]),
        st.booleans(),
    ),
    st.just(_put("certificateRevocationLists/r1", {"data": _CRL})),
    st.builds(
        lambda store: (
            "PATCH",
            "",
            {"properties": {"certificates": [{"storeName": store, "encodedCertificate": _CA_DER}]}},
        ),
        st.sampled_from(["Root", "CertificateAuthority", "Nowhere"]),
    ),
    st.builds(lambda path: ("DELETE", path, None), DELETABLE),
)


# Every example starts from this configuration (written through the API), so the generated writes
# meet resources that reference each other: policies using a named value, a fragment, a backend
# with a certificate, an API in a product.
SEED = [
    _put("namedValues/target", {"displayName": "target", "value": "https://ok.test"}),
    _put("policyFragments/f1", {"value": "<fragment><set-query-parameter name='f' /></fragment>"}),
    _put("certificates/c1", {"data": _PFX, "password": "pw"}),
    _put("backends/b1", {"url": "https://backend.test", "credentials": {"certificateIds": ["c1"]}}),
    _put("apis/a", {"path": "shop", "serviceUrl": "https://backend.test"}),
    _put("apis/b", {"path": "other", "serviceUrl": "http://127.0.0.1:9"}),
    _put("apis/a/operations/o1", {"method": "GET", "urlTemplate": "/items/{id}"}),
    _put("apis/b/operations/o2", {"method": "POST", "urlTemplate": "/items"}),
    _put("products/p1", {"displayName": "P1"}),
    ("PUT", "products/p1/apis/a", {}),
    _put(
        "apis/a/policies/policy",
        {
            "value": "<policies><inbound><set-backend-service base-url='{{target}}' /></inbound>"
            "</policies>"
        },
    ),
    _put(
        "apis/a/operations/o1/policies/policy",
        {
            "value": "<policies><inbound><base /><include-fragment fragment-id='f1' /></inbound>"
            "</policies>"
        },
    ),
]


def _state(store) -> tuple[int, dict[str, str]]:
    return store.revision(), {r.path: r.etag for r in store.list()}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(WRITES, min_size=1, max_size=10))
def test_no_accepted_write_leaves_the_gateway_on_an_older_revision(writes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(Path(directory))
        try:
            asyncio.run(_replay(store, writes))
        finally:
            store.close()


async def _replay(store, writes) -> None:
    app = create_management_app(store, admin_token=TOKEN, compiler=SnapshotBuilder(store))
    builder = SnapshotBuilder(store)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://management", headers=headers
        ) as client:
            for method, path, body in SEED:
                seeded = await client.request(method, f"/{path}", json=body)
                assert seeded.status_code in (200, 201), (path, seeded.text)
            for method, path, body in writes:
                before = _state(store)
                extra = {"If-Match": "*"} if method == "DELETE" else {}
                response = await client.request(method, f"/{path}", json=body, headers=extra)
                assert response.status_code < 500, (method, path, response.text)
                event(f"{method} {path.split('/')[0] or 'service'} -> {response.status_code}")
                if response.is_success:
                    config = builder.build()
                    assert config.revision == store.revision()
                    assert config.snapshot.problems == (), (method, path, body)
                else:
                    assert _state(store) == before, (method, path, response.text)
        fresh = SnapshotBuilder(store)
        final = fresh.build()
        assert final.snapshot.problems == ()
        assert _routes(final) == _routes(builder.build())
        fresh.close()
    finally:
        builder.close()


def _routes(config) -> dict:
    return {
        api.id: (api.path, api.service_url, sorted((op.id, op.method) for op in api.operations))
        for api in config.router.apis
    }
