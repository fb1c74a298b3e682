"""Issue 12 against a real `certgate serve`: a write the gateway could not compile is refused, and
the gateway keeps serving every accepted write afterwards (before, one bad write froze it on an old
revision and every later write, a 403 policy included, answered 200 without being applied)."""

from __future__ import annotations

from tests.e2e.serve import EchoBackend, Served, deny_when


def test_refused_writes_do_not_freeze_the_gateway(served: Served, backend: EchoBackend) -> None:
    api = {"displayName": "integrity", "path": "integrity", "serviceUrl": backend.url}
    every = {"method": "GET", "urlTemplate": "/*"}
    with served.http() as http:
        assert http.put("/apis/integrity", json={"properties": api}).status_code == 201
        put = http.put("/apis/integrity/operations/all", json={"properties": every})
        assert put.status_code == 201
        assert served.curl_status("/integrity/items/1") == 200

        repeated = {"method": "GET", "urlTemplate": "/{a}/{a}"}
        refused = http.put("/apis/integrity/operations/bad", json={"properties": repeated})
        assert refused.status_code == 400
        assert refused.json()["error"]["target"] == "urlTemplate"
        for url in ("http://[::1", "https://a:99999/"):
            bad_api = {**api, "serviceUrl": url}
            refused = http.put("/apis/integrity", json={"properties": bad_api})
            assert refused.status_code == 400
            assert refused.json()["error"]["target"] == "serviceUrl"

        # The next write is applied: the worker of this process rebuilds before the PUT returns.
        policy = {"format": "rawxml", "value": deny_when("true")}
        put = http.put("/apis/integrity/policies/policy", json={"properties": policy})
        assert put.status_code == 201
        assert served.curl_status("/integrity/items/1") == 403
        assert http.delete("/apis/integrity", headers={"If-Match": "*"}).status_code == 204
    assert served.curl_status("/integrity/items/1") == 404
