"""A real gateway (TLS on 127.0.0.1) serving one API per policy document, for policy tests."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from certgate.certs.material import CertificateMaterial
from certgate.gateway.config import HostnameConfig, build_gateway_config
from certgate.gateway.server import GatewayServer
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.engine import compile_pipeline
from certgate.policy.loader import parse_document
from certgate.snapshot.compiler import Snapshot


def document(inbound: str, outbound: str = "", on_error: str = "") -> str:
    return (
        f"<policies><inbound>{inbound}</inbound><backend><forward-request timeout='10'/>"
        f"</backend><outbound>{outbound}</outbound><on-error>{on_error}</on-error></policies>"
    )


async def start_gateway(
    certs: Any, forwarder: Any, snap: Snapshot, documents: dict[str, str], service_url: str
) -> GatewayServer:
    """APIs named after `documents`' keys (path = the key), each running its document."""
    catalog = MemoryCatalog(
        paths={f"certificates/{name}" for name in snap.certificates_by_id}
        | {f"backends/{name}" for name in snap.backends},
        thumbprints={m.thumbprint: name for name, m in snap.certificates_by_id.items()},
        keyless={name for name, m in snap.certificates_by_id.items() if m.private_key is None},
    )
    pipelines = {
        name: compile_pipeline(None, None, parse_document(text, "api", catalog))
        for name, text in documents.items()
    }
    server_cert = certs.server
    config = build_gateway_config(
        revision=1,
        hostnames=[
            HostnameConfig(
                "localhost",
                CertificateMaterial(server_cert.cert, server_cert.key, tuple(server_cert.chain)),
                default_ssl_binding=True,
            )
        ],
        apis={name: {"path": name, "serviceUrl": service_url} for name in documents},
        operations={name: {"all": {"method": "*", "urlTemplate": "/*"}} for name in documents},
        pipeline_for=lambda api_id, _op: pipelines[api_id],
        snapshot=snap,
    )
    server = GatewayServer(config, forwarder=forwarder)
    await server.start("127.0.0.1", 0)
    return server


def client(certs: Any, gateway: GatewayServer) -> httpx.AsyncClient:
    """An HTTPS client trusting the test root, based at the gateway."""
    context = ssl.create_default_context(cadata=certs.root.cert_pem.decode())
    base = f"https://localhost:{gateway.https_port}"
    return httpx.AsyncClient(verify=context, base_url=base, timeout=30)
