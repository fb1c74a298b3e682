"""Fixtures: one PKI for the module, a real backend, and a running gateway on 127.0.0.1:0."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from certgate.gateway.config import HostnameConfig, build_gateway_config
from certgate.gateway.server import GatewayServer
from certgate.gateway.upstream.forwarder import Forwarder
from certgate.limits import Limits
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.engine import compile_pipeline
from certgate.policy.loader import parse_document
from tests import pki
from tests.gateway.support import Backend, ClientFiles, material, write_identity

NEGOTIATING = "mtls.example.test"
PLAIN = "plain.example.test"


@dataclass
class Certs:
    ca: pki.Issued
    default_server: pki.Issued
    mtls_server: pki.Issued
    plain_server: pki.Issued
    ca_file: Path
    trusted: ClientFiles
    self_signed: ClientFiles
    expired: ClientFiles
    wrong_eku: ClientFiles
    issued: dict[str, pki.Issued]


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.ca("Gateway Test Root")
    clients = {
        "trusted": ca.issue("trusted-client"),
        "self_signed": pki.issue("self-signed-client"),
        "expired": ca.issue(
            "expired-client",
            not_before=pki.NOW - dt.timedelta(days=30),
            not_after=pki.NOW - dt.timedelta(days=1),
        ),
        "wrong_eku": ca.issue("server-only-eku", eku=[ExtendedKeyUsageOID.SERVER_AUTH]),
    }
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return Certs(
        ca=ca,
        default_server=pki.server(ca, "localhost"),
        mtls_server=pki.server(ca, NEGOTIATING),
        plain_server=pki.server(ca, PLAIN),
        ca_file=ca_file,
        issued=clients,
        **{k: write_identity(v, directory, k) for k, v in clients.items()},
    )


def hostnames(certs: Certs, *, default_negotiates: bool = True) -> list[HostnameConfig]:
    return [
        HostnameConfig(
            "localhost",
            material(certs.default_server),
            negotiate_client_certificate=default_negotiates,
            default_ssl_binding=True,
        ),
        HostnameConfig(NEGOTIATING, material(certs.mtls_server), negotiate_client_certificate=True),
        HostnameConfig(PLAIN, material(certs.plain_server), negotiate_client_certificate=False),
    ]


def apis(backend_url: str) -> tuple[dict, dict]:
    apis = {
        "echo": {
            "properties": {
                "displayName": "Echo",
                "path": "echo",
                "serviceUrl": backend_url,
                "protocols": ["https", "http"],
            }
        },
        "down": {"path": "down", "serviceUrl": "http://127.0.0.1:9", "protocols": ["https"]},
        "httpsonly": {"path": "secure", "serviceUrl": backend_url, "protocols": ["https"]},
    }
    operations = {
        "echo": {
            "user": {"properties": {"method": "GET", "urlTemplate": "/users/{id}"}},
            "search": {"method": "GET", "urlTemplate": "/search?q={query}"},
            "all": {"method": "*", "urlTemplate": "/*"},
        },
        "down": {"all": {"method": "*", "urlTemplate": "/*"}},
        "httpsonly": {"get": {"method": "GET", "urlTemplate": "/{*rest}"}},
    }
    return apis, operations


# The API scope tells the backend what policies saw: the client certificate and template parameters.
# forward-request's timeout covers the upload (as in APIM): 30 s for the large-body tests' uploads,
# 2 s elsewhere so that a slow backend is a quick 504.
REPORTING_POLICY = """<policies><inbound><base/>
<set-header name="X-Client-Thumbprint" exists-action="override"><value>@(
  context.Request.Certificate == null ? "none" : context.Request.Certificate.Thumbprint)</value>
</set-header>
<set-header name="X-Matched-Id" exists-action="override"><value>@(
  context.Request.MatchedParameters.GetValueOrDefault("id", "-"))</value></set-header>
</inbound><backend>
<forward-request timeout='@(context.Request.Url.Path.EndsWith("/upload") ? 30 : 2)' />
</backend><outbound><base/></outbound>
<on-error><base/></on-error>
</policies>"""


def reporting_pipelines():
    document = parse_document(REPORTING_POLICY, "api", MemoryCatalog())
    pipeline = compile_pipeline(None, None, document, None)
    return lambda api_id, op_id: pipeline


def make_config(certs: Certs, backend_url: str, revision: int = 1, **options):
    api_map, operations = apis(backend_url)
    api_map = options.pop("apis", api_map)
    return build_gateway_config(
        revision=revision,
        hostnames=options.pop("hostnames", None) or hostnames(certs),
        apis=api_map,
        operations=options.pop("operations", operations),
        pipeline_for=reporting_pipelines(),
        **options,
    )


@pytest.fixture
async def backend():
    server = await Backend().start()
    yield server
    await server.close()


@pytest.fixture
async def forwarder():
    instance = Forwarder(Limits(backend_timeout=1.0))
    yield instance
    instance.close()


@pytest.fixture
async def gateway(certs, backend, forwarder):
    server = GatewayServer(make_config(certs, backend.url), forwarder=forwarder)
    await server.start("127.0.0.1", 0, 0)
    yield server
    await server.close()


def operation_pipeline(document: str):
    """A pipeline from one operation-scope policy document (no broader scopes)."""
    return compile_pipeline(
        None, None, None, parse_document(document, "operation", MemoryCatalog())
    )


async def start_gateway(
    certs: Certs, forwarder, apis: dict, operations: dict, pipelines: dict, **server_options
) -> GatewayServer:
    """A running HTTPS gateway whose operations run `pipelines[operation id]`."""
    config = build_gateway_config(
        revision=1,
        hostnames=hostnames(certs),
        apis=apis,
        operations=operations,
        pipeline_for=lambda api_id, op_id: pipelines[op_id],
    )
    server = GatewayServer(config, forwarder=forwarder, **server_options)
    await server.start("127.0.0.1", 0, None)
    return server


@pytest.fixture
async def limited_gateway(certs, backend, forwarder):
    """`await limited_gateway(body_timeout=0.5, ...)`: a gateway running with small `Limits`."""
    servers: list[GatewayServer] = []

    async def start(**limits) -> GatewayServer:
        server = GatewayServer(
            make_config(certs, backend.url), forwarder=forwarder, limits=Limits(**limits)
        )
        await server.start("127.0.0.1", 0, 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def policy_gateway(certs, backend):
    """`await policy_gateway(path, document, **limits)`: the HTTPS port of a gateway whose API at
    `path` runs `document` (operation scope) for every request, forwarding to `backend`, with
    `Limits(backend_timeout=5.0, **limits)`."""
    servers: list = []

    async def start(path: str, document: str, **limits) -> int:
        chosen = Limits(backend_timeout=5.0, **limits)
        forwarder = Forwarder(chosen)
        apis = {path: {"path": path, "serviceUrl": backend.url, "protocols": ["https"]}}
        operations = {path: {"all": {"method": "*", "urlTemplate": "/*"}}}
        pipelines = {"all": operation_pipeline(document)}
        server = await start_gateway(certs, forwarder, apis, operations, pipelines, limits=chosen)
        servers.append((server, forwarder))
        return server.https_port

    yield start
    for server, forwarder in servers:
        await server.close()
        forwarder.close()
