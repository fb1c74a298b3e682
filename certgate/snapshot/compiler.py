"""Store -> Snapshot: everything the data plane needs, compiled once per configuration revision.

A Snapshot is immutable. Requests read one reference to the `GatewayConfig` (routes, pipelines, TLS
bindings), whose `snapshot` (`context.snapshot`) holds what the upstream side reads: backends,
certificates, the backend trust store. A new revision compiles anew, but incrementally: every
compiled piece (certificate material, backend, parsed policy document, composed pipeline,
operation route, API route, TLS binding) is kept with the ETags it was made from and reused while
they did not change, so a write of one operation to a 1,000-API configuration compiles one
operation, and reading the store decodes only the rows whose ETag moved.

One resource never breaks the whole configuration: a resource that does not compile (one written
by an older certgate, or a policy whose named value changed under it) is a `CompileProblem`, logged
once and listed in `Snapshot.problems`, and left out (an API or operation is not routed, a
hostname not bound, a policy fails its requests with 500); the rest is served at the new revision.
The management API refuses any write that would add a problem (`SnapshotBuilder.check`), so that
only happens to configurations stored before the check existed.

Product scope: certgate has no subscriptions yet, so an API that belongs to exactly one product
runs that product's policy; an API in several products runs none of them (which one applies is
decided by the caller's subscription in APIM), and the compiler logs that once per revision.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from certgate.armnames import ArmNames
from certgate.certs.crl import CrlFetcher
from certgate.certs.material import CertificateMaterial, load_certificate
from certgate.certs.stored import certificate_material, certificate_path
from certgate.certs.trust import build_verifier
from certgate.certs.verify import Verifier
from certgate.certs.x509 import X509Certificate2
from certgate.config.crlcache import StoreCrlCache
from certgate.config.datadir import issue_dev_pki
from certgate.config.problems import CompileProblem, ConfigurationRejected
from certgate.config.store import Reader, Resource, Store
from certgate.gateway.config import (
    GatewayConfig,
    HostnameConfig,
    compile_api,
    compile_operation,
    tls_bindings,
)
from certgate.gateway.router import ApiRoute, OperationRoute, Router
from certgate.gateway.tls import SNIRouter
from certgate.gateway.upstream.backend import Backend, compile_backend, runtime_properties
from certgate.gateway.upstream.forwarder import Forwarder
from certgate.gateway.upstream.tls import BackendTrust, service_backend_trust
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.management.caches import default_cache_url
from certgate.management.service import access_log_enabled
from certgate.policy.context import Deployment
from certgate.policy.contract import compile_schema
from certgate.policy.documents import PolicyDocuments
from certgate.policy.errors import PolicyValidationError
from certgate.policy.schemas import CompiledSchema, SchemaProblem

log = logging.getLogger("certgate.snapshot")

# What a failed trust build falls back to: no CA and no system roots, so nothing verifies.
_CLOSED_TRUST = {"clientCertificateTrust": {"useSystemRoots": False}}
# Kinds a policy document resolves when it is parsed (named values, fragments, references).
_CATALOG_KINDS = ("namedValue", "policyFragment", "certificate", "backend", "schema")
# Policy document kinds and their scopes: every stored document is compiled, used or not yet.
_POLICY_SCOPES = {
    "policy": "global",
    "productPolicy": "product",
    "apiPolicy": "api",
    "operationPolicy": "operation",
}


@dataclass(frozen=True)
class Snapshot:
    revision: int
    verifier: Verifier
    certificates_by_id: ArmNames[CertificateMaterial]
    certificates_by_thumbprint: Mapping[str, CertificateMaterial]
    backends: ArmNames[Backend]
    backend_trust: BackendTrust
    apis: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    problems: tuple[CompileProblem, ...] = ()


class SnapshotBuilder:
    """Compiles Snapshots for one process; keeps what must outlive a Snapshot (pools, CRL cache,
    the compiled pieces of the previous revision).

    `dev_server_pem` is the certificate served for hostnames without one (the data directory's
    development certificate); without it a throwaway one is made, enough for checking writes.
    """

    def __init__(
        self,
        store: Store,
        *,
        dev_server_pem: bytes | None = None,
        limits: Limits = DEFAULT_LIMITS,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.node = node
        self.revision = -1
        self.problems: tuple[CompileProblem, ...] = ()
        self.forwarder = Forwarder(limits)
        self.crl_fetcher = CrlFetcher(limits, StoreCrlCache(store.engine, limits))
        dev = load_certificate(dev_server_pem or issue_dev_pki()[2], None)
        self._compiler = _Compiler(dev, self.crl_fetcher, self.forwarder, limits, node)
        self._lock = threading.Lock()
        self._last_problems: frozenset[CompileProblem] | None = None

    @property
    def compiles(self) -> Counter:
        """How many pieces of each kind were compiled so far (cache misses), policy documents
        parsed included; tests and benches compare two readings."""
        return self._compiler.compiles + Counter(policyDocument=self._compiler.documents.parses)

    def build(self) -> GatewayConfig:
        """Reads the store at its current revision and compiles it; a resource that does not
        compile is logged, listed in `problems` and left out, the rest is served."""
        with self._lock:
            with self.store.reading() as reader:
                revision = reader.revision()
                self._compiler.read(reader)
            config = self._compiler.compile(revision, report=True)
            assert isinstance(config.snapshot, Snapshot)
            problems = config.snapshot.problems
            for problem in problems:
                if problem not in self.problems:
                    log.error(
                        "revision %s: %s (%s) does not compile and is left out: %s",
                        revision,
                        problem.path,
                        problem.field,
                        problem.message,
                    )
            self.problems, self.revision = problems, revision
            self._last_problems = frozenset(problems)
            return config

    def check(self, *paths: str) -> CandidateCheck:
        """The `WriteCheck` for a write of `paths` (`Store.writing`, `Store.put`/`delete`)."""
        return CandidateCheck(self, paths)

    def problems_of(self, reader: Reader) -> frozenset[CompileProblem]:
        """The problems of the state `reader` sees (compiled with the same caches as `build`).
        When every row is the one the last compile saw (a write usually starts from the state the
        previous write's check compiled), its problems are returned without compiling again."""
        with self._lock:
            unchanged = self._compiler.read(reader)
            if not unchanged or self._last_problems is None:
                config = self._compiler.compile(reader.revision(), report=False)
                assert isinstance(config.snapshot, Snapshot)
                self._last_problems = frozenset(config.snapshot.problems)
            return self._last_problems

    def close(self) -> None:
        self.forwarder.close()


class CandidateCheck:
    """Refuses a write (`ConfigurationRejected`) when a written resource does not compile or
    the write breaks another one (a named value a policy needs, a path another API uses). A
    problem the configuration already had does not block unrelated writes; a write of several
    resources (an API with its operations) is judged as a whole."""

    def __init__(self, builder: SnapshotBuilder, paths: Iterable[str]) -> None:
        self.builder, self.paths = builder, frozenset(paths)
        self._before: frozenset[CompileProblem] = frozenset()

    def before(self, reader: Reader) -> None:
        self._before = self.builder.problems_of(reader)

    def after(self, reader: Reader) -> None:
        new = [
            problem
            for problem in sorted(self.builder.problems_of(reader), key=_order)
            if problem.path in self.paths or problem not in self._before
        ]
        if new:
            raise ConfigurationRejected(new)


def _order(problem: CompileProblem) -> tuple[str, str, str]:
    return problem.path, problem.field, problem.message


class _Rows:
    """The store's rows grouped by kind; `get`/`list` let a `StoreCatalog` read them."""

    def __init__(self, rows: Mapping[str, Resource]) -> None:
        self.by_path = rows
        self._folded: dict[str, str] | None = None
        self.by_kind: dict[str, list[Resource]] = {}
        for path in sorted(rows):
            resource = rows[path]
            self.by_kind.setdefault(resource.kind, []).append(resource)

    def get(self, path: str) -> Resource | None:
        return self.by_path.get(path)

    def canonical(self, path: str) -> str | None:
        """The stored spelling of `path` (ARM names are case-insensitive)."""
        if path in self.by_path:
            return path
        if self._folded is None:
            self._folded = {stored.casefold(): stored for stored in self.by_path}
        return self._folded.get(path.casefold())

    def list(self, kind: str) -> list[Resource]:
        return self.by_kind.get(kind, [])

    def version(self, *kinds: str) -> tuple:
        """What changes whenever a row of these kinds is added, removed or rewritten."""
        return tuple((r.path, r.etag) for kind in kinds for r in self.list(kind))


class _Compiler:
    """The compiled pieces of the last state, keyed by path and the ETags they depend on."""

    def __init__(
        self,
        dev: CertificateMaterial,
        crl_fetcher: CrlFetcher,
        forwarder: Forwarder,
        limits: Limits,
        node: str | None,
    ) -> None:
        self.dev, self.crl_fetcher, self.forwarder = dev, crl_fetcher, forwarder
        self.limits, self.node = limits, node
        self.compiles: Counter = Counter()
        self.rows: dict[str, Resource] = {}
        self.documents = PolicyDocuments(_Rows({}))
        self._cache: dict[tuple[str, str], tuple] = {}
        self._used: dict[tuple[str, str], tuple] = {}
        self._bindings: Mapping = {}
        self._catalog: tuple = ()
        self._catalog_generation = 0

    def read(self, reader: Reader) -> bool:
        """Reads the rows `compile` will see; True when every one is the row read last time."""
        previous, self.rows = self.rows, reader.rows(self.rows)
        return len(previous) == len(self.rows) and all(
            previous.get(path) is row for path, row in self.rows.items()
        )

    def _get(self, slot: str, key: str, version: object, make: Callable[..., Any]) -> Any:
        """The cached piece while `version` holds, else `make()` (a failure is cached too)."""
        entry = self._used.get((slot, key)) or self._cache.get((slot, key))
        if entry is None or entry[0] != version:
            self.compiles[slot] += 1
            try:
                entry = (version, make(), None)
            except Exception as error:
                entry = (version, None, error)
        self._used[(slot, key)] = entry
        if entry[2] is not None:
            raise entry[2].with_traceback(None)
        return entry[1]

    def compile(self, revision: int, *, report: bool) -> GatewayConfig:
        """Compiles the rows of the last `read`."""
        rows = _Rows(self.rows)
        problems: list[CompileProblem] = []

        def problem(path: str, default_field: str, error: Exception) -> None:
            problems.append(_problem(path, default_field, error))

        service_row = rows.get("service")
        service = service_row.properties if service_row else {}
        service_etag = service_row.etag if service_row else ""
        loaded: dict[str, CertificateMaterial] = {}
        for row in rows.list("certificate"):
            try:
                loaded[row.name] = self._get(
                    "certificate", row.path, row.etag, lambda row=row: certificate_material(row)
                )
            except Exception as error:
                problem(row.path, "data", error)
        certificates = ArmNames(loaded)
        by_thumbprint = {m.thumbprint: m for m in certificates.values()}
        certificate_version = rows.version("certificate")
        verifier = self._verifier(rows, service, service_etag, certificates, problem)
        backends: dict[str, Backend] = {}
        for row in rows.list("backend"):
            try:
                backends[row.name] = self._get(
                    "backend",
                    row.path,
                    (row.etag, certificate_version),
                    lambda row=row: compile_backend(
                        row.name,
                        runtime_properties(row.properties, row.secrets),
                        certificates,
                        by_thumbprint,
                    ),
                )
            except Exception as error:
                problem(row.path, "url", error)
        try:
            backend_trust = self._get(
                "backendTrust", "", service_etag, lambda: service_backend_trust(service)
            )
        except Exception as error:
            problem("service", "certificates", error)
            backend_trust = BackendTrust([])
        apis = {r.name: r.properties for r in rows.list("api")}
        deployment = self._get(
            "deployment",
            "",
            (certificate_version, id(verifier)),
            lambda: Deployment(_deployment_certificates(certificates.values(), verifier)),
        )
        bindings, default = self._bindings_of(service, certificates, problem)
        catalog = rows.version(*_CATALOG_KINDS)
        if catalog != self._catalog:
            self._catalog, self._catalog_generation = catalog, self._catalog_generation + 1
        self.documents.use(rows, self._catalog_generation)
        for kind, scope in _POLICY_SCOPES.items():
            for row in rows.list(kind):
                with contextlib.suppress(PolicyValidationError):  # listed by `invalid()`
                    self.documents.document(row.path, scope)
        router = Router(
            self._routes(rows, _single_products(rows, report), problems),
            refused=lambda route, error: problem(f"apis/{route.id}", "path", error),
            cache_bytes=self.limits.route_cache_bytes,
        )
        for path, invalid in self.documents.invalid():
            problem(path, "value", invalid)
        self.documents.sweep()
        self._cache, self._used = self._used, {}
        snapshot = Snapshot(
            revision=revision,
            verifier=verifier,
            certificates_by_id=certificates,
            certificates_by_thumbprint=by_thumbprint,
            backends=ArmNames(backends),
            backend_trust=backend_trust,
            apis=apis,
            problems=tuple(problems),
        )
        return GatewayConfig(
            revision=revision,
            router=router,
            sni=SNIRouter(bindings.values(), default) if default is not None else None,
            snapshot=snapshot,
            deployment=deployment,
            forwarder=self.forwarder,
            verifier=verifier,
            crl_prefetch=verifier.prefetch,
            bindings=bindings,
            cache_url=default_cache_url(rows.list("cache")),
            access_log=access_log_enabled(service),
        )

    def _verifier(
        self,
        rows: _Rows,
        service: Mapping,
        service_etag: str,
        certificates: Mapping[str, CertificateMaterial],
        problem,
    ) -> Verifier:
        crls = rows.list("certificateRevocationList")
        gateway_cas = (
            rows.version("gatewayCertificateAuthority", "certificate") if self.node else ()
        )
        try:
            return self._get(
                "verifier",
                "",
                (service_etag, tuple(r.etag for r in crls), gateway_cas),
                lambda: build_verifier(
                    service,
                    [r.properties for r in crls],
                    gateway_authorities=_gateway_authorities(rows, self.node, certificates),
                    fetcher=self.crl_fetcher,
                    limits=self.limits,
                ),
            )
        except Exception as error:
            problem("service", "certificates", error)
            return self._get(
                "verifier",
                "closed",
                (),
                lambda: build_verifier(_CLOSED_TRUST, fetcher=self.crl_fetcher, limits=self.limits),
            )

    def _bindings_of(self, service: Mapping, certificates: Mapping, problem):
        """SNI bindings of `hostnameConfigurations` (the dev certificate where none is named)."""
        configured: list[HostnameConfig] = []
        index: dict[int, int] = {}
        entries = service.get("hostnameConfigurations") or []
        if not isinstance(entries, list):
            problem("service", "hostnameConfigurations", TypeError("not a list"))
            entries = []
        for position, entry in enumerate(entries):
            target = f"hostnameConfigurations[{position}]"
            if not isinstance(entry, dict):
                problem("service", target, TypeError("not an object"))
                continue
            certificate: CertificateMaterial | None = self.dev
            if entry.get("certificateId"):
                name = certificate_path(entry["certificateId"]).split("/", 1)[1]
                certificate = certificates.get(name)
                if certificate is None:
                    error = LookupError(f"certificate '{name}' is not loaded")
                    problem("service", f"{target}.certificateId", error)
                    continue
            hostname = HostnameConfig(
                hostname=entry.get("hostName") or "",
                certificate=certificate,
                negotiate_client_certificate=bool(entry.get("negotiateClientCertificate")),
                default_ssl_binding=bool(entry.get("defaultSslBinding")),
            )
            index[id(hostname)] = position
            configured.append(hostname)
        if not any(h.default_ssl_binding for h in configured):
            configured.append(
                HostnameConfig("localhost", self.dev, default_ssl_binding=not configured)
            )
        bindings, default = tls_bindings(
            configured,
            self._bindings,
            refused=lambda entry, error: problem(
                "service", f"hostnameConfigurations[{index.get(id(entry))}]", error
            ),
        )
        self._bindings = bindings
        return bindings, default

    def _routes(
        self, rows: _Rows, products: Mapping[str, str], problems: list[CompileProblem]
    ) -> list[ApiRoute]:
        """Compiled API routes. An API whose row, operations and policy documents did not change
        is reused whole; in a changed API only the changed operations compile again. (Every stored
        document was parsed before: `documents.entry` tells whether one was parsed again.)"""
        operations: dict[str, list[Resource]] = {}
        for row in rows.list("operation"):
            operations.setdefault(row.parent.split("/")[1], []).append(row)
        schemas: dict[str, list[Resource]] = {}
        for row in rows.list("apiSchema"):
            schemas.setdefault(row.parent.split("/")[1], []).append(row)
        documents = self.documents
        global_policy = documents.entry("policies/policy")
        routes = []
        # The older API keeps a path two APIs claim: the newer one is the write to refuse.
        for api in sorted(rows.list("api"), key=_age):
            product = products.get(api.name)
            scopes = (
                global_policy,
                product,
                documents.entry(f"products/{product}/policies/policy") if product else None,
                documents.entry(f"{api.path}/policies/policy"),
            )
            ops = operations.get(api.name, [])
            api_schemas = tuple((row.name, row.etag) for row in schemas.get(api.name, []))
            version = (
                api.etag,
                scopes,
                tuple((op.etag, documents.entry(f"{op.path}/policies/policy")) for op in ops),
                api_schemas,
            )
            route, found = self._get(
                "api",
                api.path,
                version,
                lambda api=api, ops=ops, scopes=scopes, product=product, versions=api_schemas: (
                    self._api(rows, api, ops, scopes, product, versions)
                ),
            )
            problems.extend(found)
            if route is not None:
                routes.append(route)
        return routes

    def _api(
        self,
        rows: _Rows,
        api: Resource,
        ops: list[Resource],
        scopes: tuple,
        product: str | None,
        schema_versions: tuple,
    ) -> tuple[ApiRoute | None, tuple[CompileProblem, ...]]:
        """One API and its operations (unchanged ones reused); never raises: what does not
        compile is returned as problems and left out."""
        found: list[CompileProblem] = []
        compiled: list[OperationRoute] = []
        schemas: dict[str, CompiledSchema | None] = {}
        for name, etag in schema_versions:
            path = f"{api.path}/schemas/{name}"
            try:
                schemas[name] = self._get(
                    "apiSchema",
                    path,
                    etag,
                    lambda path=path: compile_schema(rows.by_path[path].properties),
                )
            except SchemaProblem as error:
                schemas[name] = None  # operations naming it validate against nothing
                found.append(_problem(path, "document", error))
        for op in ops:
            version = (
                op.etag,
                self.documents.entry(f"{op.path}/policies/policy"),
                scopes,
                schema_versions,
            )
            try:
                compiled.append(
                    self._get(
                        "operation",
                        op.path,
                        version,
                        lambda op=op: compile_operation(
                            op.name,
                            op.properties,
                            self.documents.pipeline(api.name, op.name, product),
                            schemas,
                        ),
                    )
                )
            except Exception as error:
                found.append(_problem(op.path, "urlTemplate", error))
        try:
            route = compile_api(api.name, api.properties)
        except Exception as error:
            return None, (*found, _problem(api.path, "path", error))
        route.add_operations(compiled)
        return route, tuple(found)


def _age(row: Resource) -> tuple:
    return row.created, row.path


def _problem(path: str, default_field: str, error: Exception) -> CompileProblem:
    """The field named by the error (`RouteConfigError.field`, a policy error's element)."""
    name = getattr(error, "field", None) or getattr(error, "element", None)
    return CompileProblem(path, name or default_field, str(error))


def _gateway_authorities(
    rows: _Rows, node: str | None, certificates: Mapping[str, CertificateMaterial]
) -> list[tuple[x509.Certificate, bool]]:
    """This node's gateway CAs (`gateways/<node>/certificateAuthorities`): (cert, isTrusted)."""
    if node is None:
        return []
    wanted = node.casefold()
    found = [
        (certificates.get(row.name), bool(row.properties.get("isTrusted")))
        for row in rows.list("gatewayCertificateAuthority")
        if row.parent.split("/")[1].casefold() == wanted
    ]
    return [(material.certificate, trusted) for material, trusted in found if material]


def _deployment_certificates(materials, verifier: Verifier) -> dict[str, X509Certificate2]:
    """`context.Deployment.Certificates`: every stored certificate by thumbprint, as APIM offers."""
    return {m.thumbprint: X509Certificate2(m.certificate, m.chain, verifier) for m in materials}


def _single_products(rows: _Rows, report: bool) -> dict[str, str]:
    """API id -> its product, for APIs in exactly one product (global > product > API > op)."""
    products: dict[str, list[str]] = {}
    for link in rows.list("productApi"):
        products.setdefault(link.name, []).append(link.parent.split("/")[1])
    for api_id, names in products.items():
        if len(names) > 1 and report:
            log.warning(
                "API %r is in several products (%s): no product policy applies to it",
                api_id,
                ", ".join(sorted(names)),
            )
    return {api_id: names[0] for api_id, names in products.items() if len(names) == 1}
