"""Store -> Snapshot: everything the data plane needs, compiled once per configuration revision.

A Snapshot is immutable. Requests read one reference to the `GatewayConfig` (routes, pipelines, TLS
bindings), whose `snapshot` (`context.snapshot`) holds what the upstream side reads: backends,
certificates, the backend trust store. A new revision compiles both anew; TLS contexts and pools of
unchanged identities carry over.

Product scope: certgate has no subscriptions yet, so an API that belongs to exactly one product
runs that product's policy; an API in several products runs none of them (which one applies is
decided by the caller's subscription in APIM), and the compiler logs that once per revision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from certgate.certs.crl import CrlFetcher
from certgate.certs.material import CertificateMaterial, load_certificate
from certgate.certs.trust import build_verifier
from certgate.certs.verify import Verifier
from certgate.certs.x509 import X509Certificate2
from certgate.config.store import Resource, Store
from certgate.gateway.config import GatewayConfig, HostnameConfig, build_gateway_config
from certgate.gateway.upstream.backend import Backend
from certgate.gateway.upstream.forwarder import Forwarder
from certgate.gateway.upstream.tls import BackendTrust, service_backend_trust
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.management.backends import compile_stored_backends
from certgate.management.certificates import certificate_material, certificate_path
from certgate.policy.context import Deployment
from certgate.policy.documents import PolicyDocuments
from certgate.policy.engine import Pipeline

log = logging.getLogger("certgate.snapshot")


@dataclass(frozen=True)
class Snapshot:
    revision: int
    verifier: Verifier
    certificates_by_id: Mapping[str, CertificateMaterial]
    certificates_by_thumbprint: Mapping[str, CertificateMaterial]
    backends: Mapping[str, Backend]
    backend_trust: BackendTrust
    apis: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class SnapshotBuilder:
    """Compiles Snapshots for one process; keeps what must outlive a Snapshot (pools, CRL cache)."""

    def __init__(
        self,
        store: Store,
        *,
        dev_server_pem: bytes,
        limits: Limits = DEFAULT_LIMITS,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.node = node
        self.revision = -1
        self.forwarder = Forwarder(limits)
        self.crl_fetcher = CrlFetcher(limits)
        self._dev_server = load_certificate(dev_server_pem, None)
        self._previous: GatewayConfig | None = None

    def build(self) -> GatewayConfig:
        """Reads the store at its current revision and compiles it; raises on a broken config."""
        revision = self.store.revision()
        config = _compile(_Rows(self.store.list()), revision, self)
        self._previous, self.revision = config, revision
        return config

    def close(self) -> None:
        self.forwarder.close()


class _Rows:
    """The store's rows grouped by kind and path, read once per build."""

    def __init__(self, resources: list[Resource]) -> None:
        self.by_path = {r.path: r for r in resources}
        self.by_kind: dict[str, list[Resource]] = {}
        for resource in resources:
            self.by_kind.setdefault(resource.kind, []).append(resource)

    def kind(self, name: str) -> list[Resource]:
        return self.by_kind.get(name, [])

    def properties(self, path: str) -> dict:
        row = self.by_path.get(path)
        return row.properties if row else {}


def _compile(rows: _Rows, revision: int, builder: SnapshotBuilder) -> GatewayConfig:
    service = rows.properties("service")
    certificates = {r.name: certificate_material(r) for r in rows.kind("certificate")}
    by_thumbprint = {m.thumbprint: m for m in certificates.values()}
    verifier = build_verifier(
        service,
        [r.properties for r in rows.kind("certificateRevocationList")],
        gateway_authorities=_gateway_authorities(rows, builder.node, certificates),
        fetcher=builder.crl_fetcher,
        limits=builder.limits,
    )
    apis = {r.name: r.properties for r in rows.kind("api")}
    snapshot = Snapshot(
        revision=revision,
        verifier=verifier,
        certificates_by_id=certificates,
        certificates_by_thumbprint=by_thumbprint,
        backends=compile_stored_backends(rows.kind("backend"), certificates, by_thumbprint),
        backend_trust=service_backend_trust(service),
        apis=apis,
    )
    operations: dict[str, dict[str, dict]] = {}
    for row in rows.kind("operation"):
        operations.setdefault(row.parent.split("/")[1], {})[row.name] = row.properties
    return build_gateway_config(
        revision=revision,
        hostnames=_hostnames(service, certificates, builder._dev_server),
        apis=apis,
        operations=operations,
        pipeline_for=_pipelines(rows, PolicyDocuments(builder.store)),
        snapshot=snapshot,
        deployment=Deployment(_deployment_certificates(certificates.values(), verifier)),
        forwarder=builder.forwarder,
        verifier=verifier,
        crl_prefetch=verifier.prefetch,
        previous=builder._previous,
    )


def _hostnames(
    service: Mapping, certificates: Mapping[str, CertificateMaterial], dev: CertificateMaterial
) -> list[HostnameConfig]:
    configured = [
        HostnameConfig(
            hostname=entry["hostName"],
            certificate=(
                certificates[certificate_path(entry["certificateId"]).split("/", 1)[1]]
                if entry.get("certificateId")
                else dev
            ),
            negotiate_client_certificate=bool(entry.get("negotiateClientCertificate")),
            default_ssl_binding=bool(entry.get("defaultSslBinding")),
        )
        for entry in service.get("hostnameConfigurations") or []
    ]
    if not any(h.default_ssl_binding for h in configured):
        configured.append(HostnameConfig("localhost", dev, default_ssl_binding=not configured))
    return configured


def _gateway_authorities(
    rows: _Rows, node: str | None, certificates: Mapping[str, CertificateMaterial]
) -> list[tuple[x509.Certificate, bool]]:
    """This node's gateway CAs (`gateways/<node>/certificateAuthorities`): (cert, isTrusted)."""
    if node is None:
        return []
    wanted = node.casefold()
    return [
        (certificates[row.name].certificate, bool(row.properties.get("isTrusted")))
        for row in rows.kind("gatewayCertificateAuthority")
        if row.parent.split("/")[1].casefold() == wanted and row.name in certificates
    ]


def _deployment_certificates(materials, verifier: Verifier) -> dict[str, X509Certificate2]:
    """`context.Deployment.Certificates`: every stored certificate by thumbprint, as APIM offers."""
    return {m.thumbprint: X509Certificate2(m.certificate, m.chain, verifier) for m in materials}


def _pipelines(rows: _Rows, documents: PolicyDocuments) -> Callable[[str, str], Pipeline]:
    """`pipeline_for(api, operation)`: global > product (when unambiguous) > API > operation."""
    products: dict[str, list[str]] = {}
    for link in rows.kind("productApi"):
        products.setdefault(link.name, []).append(link.parent.split("/")[1])
    for api_id, names in products.items():
        if len(names) > 1:
            log.warning(
                "API %r is in several products (%s): no product policy applies to it",
                api_id,
                ", ".join(sorted(names)),
            )
    single = {api_id: names[0] for api_id, names in products.items() if len(names) == 1}
    return lambda api_id, operation_id: documents.pipeline(api_id, operation_id, single.get(api_id))
