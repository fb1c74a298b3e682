"""Per-request cost of APIM's documented thumbprint policy plus forward-request (target < 5 µs).

The policy is pasted verbatim from APIM's documentation (`Verify()` and the thumbprint check);
the forwarder does nothing, so this measures the policy engine and the expression. The client
certificate's verification is cached per connection, as on a keep-alive connection.

    .venv/bin/python bench/policy_thumbprint.py [requests]
"""

# ruff: noqa: E501 - the documented policy is pasted verbatim
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from certgate.certs.verify import TrustStore, Verifier
from certgate.certs.x509 import X509Certificate2
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.context import BackendTarget, Context, Headers, Request
from certgate.policy.engine import compile_pipeline
from certgate.policy.loader import parse_document
from tests import pki

POLICY = """<policies><inbound><choose>
    <when condition="@(context.Request.Certificate == null || !context.Request.Certificate.Verify() || context.Request.Certificate.Thumbprint != "DESIRED-THUMBPRINT-IN-UPPER-CASE")" >
        <return-response>
            <set-status code="403" reason="Invalid client certificate" />
        </return-response>
    </when>
</choose></inbound><backend><forward-request /></backend></policies>"""


class NoopForwarder:
    async def forward(self, context, options) -> None:
        return None


def _per_call(fn, requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        fn()
    return (time.perf_counter() - start) / requests


async def measure(requests: int) -> dict[str, float]:
    root = pki.ca("Bench Root")
    client = root.issue("bench-client")
    verifier = Verifier(TrustStore([root.cert], use_system_roots=False))
    certificate = X509Certificate2(client.cert, client.chain, verifier, {})
    text = POLICY.replace("DESIRED-THUMBPRINT-IN-UPPER-CASE", client.thumbprint)
    pipeline = compile_pipeline(parse_document(text, "global", MemoryCatalog()))
    forwarder = NoopForwarder()
    headers = [("Host", "gateway.example"), ("Accept", "*/*")]
    backend = BackendTarget("https://backend.example")

    def new_context() -> Context:
        request = Request(
            "GET",
            "https",
            "gateway.example",
            443,
            "/api/x",
            Headers(headers),
            None,
            "127.0.0.1",
            certificate,
        )
        return Context(request, backend=backend)

    # The passing request changes nothing the next run reads, so one context can be reused.
    context = new_context()
    await pipeline.run(context, forwarder)
    assert context.Response.StatusCode == 200, "the right certificate must pass"
    start = time.perf_counter()
    for _ in range(requests):
        await pipeline.run(context, forwarder)
    engine = (time.perf_counter() - start) / requests
    start = time.perf_counter()
    for _ in range(requests):
        await pipeline.run(new_context(), forwarder)
    total = (time.perf_counter() - start) / requests
    condition = pipeline.inbound[0].branches[0][0]
    bare = compile_pipeline(parse_document("<policies/>", "global", MemoryCatalog()))

    async def bare_runs() -> float:
        start = time.perf_counter()
        for _ in range(requests):
            await bare.run(context, forwarder)
        return (time.perf_counter() - start) / requests

    return {
        "pipeline.run": engine,
        "with Request and Context built": total,
        "of which the condition expression": _per_call(
            lambda: condition.evaluate(context), requests
        ),
        "of which Certificate.Verify() (cached)": _per_call(certificate.Verify, requests),
        "forward-request alone (engine floor)": await bare_runs(),
    }


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    figures = asyncio.run(measure(requests))
    for name, seconds in figures.items():
        print(f"{name}: {seconds * 1e6:.2f} µs/request")
    engine = figures["pipeline.run"]
    print(
        f"thumbprint policy + forward-request, target < 5 µs: {'met' if engine < 5e-6 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
