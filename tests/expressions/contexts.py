"""Real `context` objects for expression tests: the classes of `certgate/policy/context.py`,
filled from wire-shaped values (header pairs, a raw request-target, body bytes) and real
certificates from `tests/pki.py`, verified by a real `Verifier`."""

from __future__ import annotations

from datetime import UTC, datetime

from certgate.certs.verify import TrustStore, Verifier
from certgate.certs.x509 import X509Certificate2
from certgate.expressions.dotnet.json import parse_json
from certgate.policy.context import Context, Deployment, Headers, Request, Response
from tests import pki

ROOT = pki.ca("Expressions Root")
CLIENT = ROOT.issue("client")
STRANGER = pki.ca("Stranger Root").issue("client")
VERIFIER = Verifier(TrustStore([ROOT.cert], use_system_roots=False))
DEPLOYED = (CLIENT, ROOT.issue("deployed two"))
REQUEST_BODY = b'{"name": "Ada", "tags": ["a", "b"], "n": 3, "nested": {"ok": true}}'


def certificate(issued: pki.Issued) -> X509Certificate2:
    """The certificate as the gateway hands it to policies (with the connection's verifier)."""
    return X509Certificate2(issued.cert, issued.chain, VERIFIER, {})


def build_context(
    client: X509Certificate2 | None = None,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = REQUEST_BODY,
    method: str = "POST",
    target: str = "/orders/42?page=2&sort=desc",
) -> Context:
    """A POST to https://api.example.com/orders/42?page=2&sort=desc with a JSON body."""
    if headers is None:
        headers = [
            ("Accept", "application/json"),
            ("X-Id", "7"),
            ("Authorization", "Bearer t0k"),
            ("accept", "text/plain"),
        ]
    request = Request(
        method,
        "https",
        "api.example.com",
        443,
        target,
        Headers(headers),
        body,
        "10.1.2.3",
        client,
    )
    request.set_matched_parameters({"id": "42"})
    deployed = {issued.thumbprint: certificate(issued) for issued in DEPLOYED}
    ctx = Context(request, deployment=Deployment(deployed, region="West Europe"))
    ctx.Response = Response(
        200, "OK", Headers([("Content-Type", "application/json")]), b"[1, 2, 3]"
    )
    for name, value in {
        "count": 5,
        "name": "ada",
        "flag": True,
        "json": parse_json('{"a": {"b": [10, 20]}, "s": "x"}'),
        "when": datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC),
        "nothing": None,
    }.items():
        ctx.Variables.set(name, value)
    return ctx
