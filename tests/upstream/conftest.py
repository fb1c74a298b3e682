"""Fixtures: a PKI, real TLS backends on 127.0.0.1, a forwarder, and a way to run one request."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests.pki`, the one certificate factory

import pytest  # noqa: E402
import uvloop  # noqa: E402

from certgate.armnames import ArmNames  # noqa: E402
from certgate.certs.material import CertificateMaterial, load_certificate  # noqa: E402
from certgate.certs.verify import TrustStore, Verifier  # noqa: E402
from certgate.gateway.upstream import BackendTrust, Forwarder, compile_backend  # noqa: E402
from certgate.limits import Limits  # noqa: E402
from certgate.policy.context import BackendTarget, Context, Headers, Request  # noqa: E402
from certgate.snapshot.compiler import Snapshot  # noqa: E402
from tests import pki  # noqa: E402
from tests.upstream.echo import EchoBackend  # noqa: E402


def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}  # what the gateway runs on


@dataclass
class Pki:
    root: pki.Issued
    server: pki.Issued
    client_a: pki.Issued
    client_b: pki.Issued
    a: CertificateMaterial
    b: CertificateMaterial


@pytest.fixture(scope="session")
def certs() -> Pki:
    root = pki.ca("Upstream Test Root")
    intermediate = root.issue("Upstream Client Issuing CA", ca=True)
    client_a = intermediate.issue("client-a")
    client_b = root.issue("client-b")
    return Pki(
        root,
        pki.server(root),
        client_a,
        client_b,
        load_certificate(client_a.pfx("pw-a"), "pw-a"),
        load_certificate(client_b.pfx("pw-b"), "pw-b"),
    )


def snapshot(certs: Pki, revision: int = 1, **materials: CertificateMaterial) -> Snapshot:
    """A Snapshot trusting the test root (clients and backends), holding `materials` by id."""
    return Snapshot(
        revision=revision,
        verifier=Verifier(TrustStore([certs.root.cert], use_system_roots=False)),
        certificates_by_id=ArmNames(materials),
        certificates_by_thumbprint={m.thumbprint: m for m in materials.values()},
        backends=ArmNames({}),
        backend_trust=BackendTrust([certs.root.cert]),
    )


def with_backend(snap: Snapshot, properties: dict[str, Any], backend_id: str = "be") -> Snapshot:
    """`snap` serving the backend entity of ARM `properties` too, compiled against its certificates
    as the Snapshot compiler does (a new ArmNames: its case-folded index is built once)."""
    backend = compile_backend(
        backend_id, properties, snap.certificates_by_id, snap.certificates_by_thumbprint
    )
    return replace(snap, backends=ArmNames({**snap.backends, backend_id: backend}))


@pytest.fixture
async def backend(certs: Pki):
    """An mTLS backend for `localhost`, asking for client certificates issued under the root."""
    server = await EchoBackend.start(certs.server, certs.root)
    yield server
    await server.stop()


@pytest.fixture
async def forwarder():
    forwarder = Forwarder(Limits(backend_timeout=10))
    yield forwarder
    forwarder.close()


def make_context(
    url: str,
    snap: Snapshot | None = None,
    *,
    path: str = "/",
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: Any = None,
    backend_id: str | None = None,
) -> Context:
    request = Request(
        method, "https", "gw.example.test", 443, path, Headers(headers or []), body, "10.0.0.9"
    )
    return Context(
        request,
        snapshot=snap,
        backend=BackendTarget(url, backend_id),
        backend_path=path.partition("?")[0],
    )


async def send(forwarder: Forwarder, context: Context, options: Any = None) -> dict:
    """Forward and return the echo backend's JSON answer."""
    await forwarder.forward(context, options)
    response = context.Response
    assert response.StatusCode == 200, response.StatusCode
    return json.loads(await response.Body.buffer())


async def wait_for(condition, timeout: float = 5.0) -> None:
    """Wait until `condition()` is true, polling the loop (no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
