"""The immutable configuration one gateway process serves from (`GatewayConfig`).

`build_gateway_config(...)` turns already-loaded pieces (server `CertificateMaterial`s per hostname,
ARM-shaped API and operation properties, compiled pipelines) into ready objects: pyOpenSSL contexts
with the SNI router, the compiled `Router`, the policy `Api`/`Operation` objects. It is called by
the Snapshot compiler; the server swaps whole configs atomically (`GatewayServer.update`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509

from certgate.certs.certinfo import CertInfo
from certgate.gateway.router import (
    ApiRoute,
    OperationRoute,
    Router,
    api_route,
    operation_route,
)
from certgate.gateway.tls import SNIRouter, TLSBinding, TLSConfigError, server_context
from certgate.policy.context import Api, Deployment, Operation
from certgate.policy.contract import build_contract
from certgate.policy.examples import ResponseExamples
from certgate.policy.forwarding import Forwarder, SnapshotView

if TYPE_CHECKING:
    from certgate.certs.material import CertificateMaterial
    from certgate.certs.verify import Verifier
    from certgate.policy.engine import Pipeline

# Downloads the CRLs a client's path needs (`Verifier.prefetch(leaf, chain)`)
CrlPrefetch = Callable[
    [x509.Certificate | CertInfo, Sequence[x509.Certificate | CertInfo]], Awaitable[None]
]


@dataclass(frozen=True, slots=True)
class HostnameConfig:
    """One `hostnameConfigurations[]` entry of type Proxy, with its loaded server certificate."""

    hostname: str
    certificate: CertificateMaterial | None
    negotiate_client_certificate: bool = False
    default_ssl_binding: bool = False

    @classmethod
    def from_arm(
        cls, properties: Mapping[str, Any], certificate: CertificateMaterial | None
    ) -> HostnameConfig:
        """From one ARM `hostnameConfigurations[]` entry (`hostName`, `negotiateClientCertificate`,
        `defaultSslBinding`) and its already-loaded certificate."""
        hostname = properties.get("hostName")
        if not hostname or not isinstance(hostname, str):
            raise TLSConfigError("hostnameConfigurations: 'hostName' is required")
        return cls(
            hostname,
            certificate,
            bool(properties.get("negotiateClientCertificate", False)),
            bool(properties.get("defaultSslBinding", False)),
        )


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything the data plane reads for a request; requests take one reference to it."""

    revision: int
    router: Router
    sni: SNIRouter | None  # None: no hostname has a certificate, TLS connections are refused
    snapshot: SnapshotView | None = None  # the lead's Snapshot, policies' context.snapshot
    deployment: Deployment | None = None  # policy `context.Deployment` (None: an empty default)
    forwarder: Forwarder | None = None  # overrides the server's forwarder when set
    verifier: Verifier | None = None  # behind X509Certificate2.Verify()
    # awaited once per connection and config before the pipeline
    crl_prefetch: CrlPrefetch | None = None
    bindings: Mapping[tuple[str, str, bool], TLSBinding] = field(default_factory=dict)
    cache_url: str | None = None  # the `caches` resource's Redis (None: `--redis-url`'s)
    access_log: bool = True  # the service's `accessLog.enabled` (where --access-log names a file)


def build_gateway_config(
    *,
    revision: int = 0,
    hostnames: Iterable[HostnameConfig] = (),
    apis: Mapping[str, Mapping[str, Any]] = {},
    operations: Mapping[str, Mapping[str, Mapping[str, Any]]] = {},
    pipeline_for: Callable[[str, str], Pipeline],
    snapshot: SnapshotView | None = None,
    deployment: Deployment | None = None,
    forwarder: Forwarder | None = None,
    verifier: Verifier | None = None,
    crl_prefetch: CrlPrefetch | None = None,
    previous: GatewayConfig | None = None,
    cache_url: str | None = None,
) -> GatewayConfig:
    """Compiles a `GatewayConfig`.

    `apis` maps API id -> ARM properties (`path`, `serviceUrl`, `protocols`, `displayName`), or the
    whole resource with a `properties` key. `operations` maps API id -> operation id -> properties
    (`method`, `urlTemplate`, `displayName`). `pipeline_for(api_id, operation_id)` returns the
    compiled pipeline (`await pipeline.run(context, forwarder)`). `verifier` backs
    `X509Certificate2.Verify()`; `crl_prefetch(leaf, chain)` (e.g. `CrlStore.prefetch`) is awaited
    once per connection before the first pipeline. `previous` lets unchanged hostname bindings keep
    their SSL context (and its session cache). `cache_url`: the external cache's Redis URL from
    the management `caches` resource. Raises ValueError naming the bad field.
    """
    bindings, default = tls_bindings(hostnames, previous.bindings if previous is not None else {})
    routes: list[ApiRoute] = []
    for api_id, resource in apis.items():
        route = compile_api(api_id, resource)
        route.add_operations(
            compile_operation(op_id, op_resource, pipeline_for(api_id, op_id))
            for op_id, op_resource in operations.get(api_id, {}).items()
        )
        routes.append(route)
    return GatewayConfig(
        revision=revision,
        router=Router(routes),
        sni=SNIRouter(bindings.values(), default) if default is not None else None,
        snapshot=snapshot,
        deployment=deployment,
        forwarder=forwarder,
        verifier=verifier,
        crl_prefetch=crl_prefetch,
        bindings=bindings,
        cache_url=cache_url,
    )


def compile_api(api_id: str, resource: Mapping[str, Any]) -> ApiRoute:
    """An `ApiRoute` without operations, with its `context.Api`; raises RouteConfigError."""
    route = api_route(api_id, resource)
    props = resource.get("properties", resource)
    route.context_api = Api(
        api_id,
        props.get("displayName") or api_id,
        route.path,
        route.service_url,
        tuple(sorted(route.protocols)),
    )
    return route


def compile_operation(
    op_id: str, resource: Mapping[str, Any], pipeline: Pipeline, schemas: Mapping[str, Any] = {}
) -> OperationRoute:
    """A compiled `OperationRoute` with its `context.Operation`; raises RouteConfigError.
    `schemas`: the API's compiled schemas by id (`certgate.policy.contract.compile_schema`,
    None for one that does not compile)."""
    op = operation_route(op_id, resource, pipeline)
    props = resource.get("properties", resource)
    op.context_operation = Operation(
        op_id,
        props.get("displayName") or op_id,
        op.method,
        op.url_template,
        ResponseExamples(props.get("responses") or ()),
        build_contract(props, schemas),
    )
    return op


def tls_bindings(
    hostnames: Iterable[HostnameConfig],
    reuse: Mapping[tuple[str, str, bool], TLSBinding],
    refused: Callable[[HostnameConfig, Exception], None] | None = None,
) -> tuple[dict[tuple[str, str, bool], TLSBinding], TLSBinding | None]:
    """The SNI bindings (one found in `reuse`, the bindings of the previous config, keeps its
    context and session cache) and the default binding.

    Raises on a binding that cannot be made; with `refused`, reports it there and leaves it out.
    """
    bindings: dict[tuple[str, str, bool], TLSBinding] = {}
    default: TLSBinding | None = None
    flagged = False
    for entry in hostnames:
        try:
            key, binding = _binding(entry, reuse)
        except Exception as error:
            if refused is None:
                raise
            refused(entry, error)
            continue
        bindings[key] = binding
        if entry.default_ssl_binding and not flagged:
            default, flagged = binding, True
        elif default is None:
            default = binding
    return bindings, default


def _binding(
    entry: HostnameConfig, reuse: Mapping[tuple[str, str, bool], TLSBinding]
) -> tuple[tuple[str, str, bool], TLSBinding]:
    material = entry.certificate
    if material is None:
        raise TLSConfigError(f"hostname {entry.hostname!r}: no server certificate")
    hostname = entry.hostname.strip().lower()
    if not hostname:
        raise TLSConfigError("hostnameConfigurations: 'hostName' is required")
    key = (hostname, str(material.thumbprint), bool(entry.negotiate_client_certificate))
    binding = reuse.get(key)
    if binding is None:
        context = server_context(
            material.certificate,
            material.private_key,
            material.chain or (),
            negotiate_client_certificate=entry.negotiate_client_certificate,
            hostname=hostname,
        )
        binding = TLSBinding(hostname, context, entry.negotiate_client_certificate)
    return key, binding
