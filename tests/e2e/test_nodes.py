"""Several nodes on one PostgreSQL store (issue 14): three `certgate serve` processes on one
machine, different ports, the same `--store`, data key and admin token.

A write on one node's management API is served by the others within 2 s; each node is listed as a
self-hosted gateway with its live status; a gateway's certificateAuthorities apply to its node
only; a key vault rotation reaches every node while only one node (the lease holder) reads the
vault; a node killed under load costs the others no request, shows as not live, and catches up
when it starts again; a CRL at a client certificate's distribution point is downloaded by one
node and read by the others from the store, also after that node dies.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certgate import __version__
from tests import pki
from tests.certs.crlserver import CrlServer
from tests.e2e.serve import (
    CERTGATE,
    UNVERIFIED,
    EchoBackend,
    Served,
    client_env,
    deny_when,
    free_port,
)
from tests.gateway.support import write_identity
from tests.keyvault.bao import BaoServer, wait_until

NODES = ("node1", "node2", "node3")
SERVED_WITHIN = 2.0  # the issue's promise: a write on one node is served by all within 2 s
LOAD_REQUESTS = 200  # per loaded node while node2 is killed
KILL_AFTER = 50  # requests each loader has made before node2 dies
OPTIONS = ("--heartbeat-interval", "0.5", "--lease-timeout", "3")
REFRESH_INTERVAL = "1"  # seconds between the lease holder's key vault checks


@dataclass
class Cluster:
    nodes: dict[str, Served]
    bao: BaoServer
    audit: Path

    def http(self, node: str = "node1", *, wait: bool = True) -> httpx.Client:
        return self.nodes[node].http(wait=wait)

    def gateway(self, node: str) -> httpx.Client:
        served = self.nodes[node]
        context = ssl.create_default_context(cafile=served.dev_ca)
        return httpx.Client(base_url=served.gateway_url, verify=context, timeout=10)

    def vault_reads(self, secret: str, after: int) -> list[str]:
        """Which node's token read `secret` (its data or its metadata: the refresher checks the
        latest version there), one entry per read, after line `after` of the log."""
        lines = self.audit.read_text().splitlines()[after:]
        entries = [json.loads(line) for line in lines if line.strip()]
        return [
            ((entry.get("auth") or {}).get("metadata") or {}).get("node", "?")
            for entry in entries
            if entry.get("type") == "response"
            and entry["request"].get("path")
            in (f"secret/data/{secret}", f"secret/metadata/{secret}")
            and entry["request"].get("operation") == "read"
        ]

    def audit_lines(self) -> int:
        return len(self.audit.read_text().splitlines())


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("nodes")
    with BaoServer(audit=True) as bao:
        store = postgres.database().replace("postgresql+psycopg://", "postgresql://")
        shared = {
            "CERTGATE_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
            "CERTGATE_ADMIN_TOKEN": secrets.token_urlsafe(24),
            "VAULT_ADDR": bao.address,
        }

        def start(name: str) -> Served:
            token = bao.client().auth.token.create(policies=["root"], meta={"node": name})
            env = {**shared, "VAULT_TOKEN": token["auth"]["client_token"]}
            options = (*OPTIONS, "--key-vault-refresh-interval", REFRESH_INTERVAL)
            return Served.start(
                base / name, options=("--store", store, "--node", name, *options), env=env
            )

        with ThreadPoolExecutor(len(NODES)) as pool:
            nodes = dict(zip(NODES, pool.map(start, NODES), strict=True))
        cluster = Cluster(nodes, bao, bao.audit_log)
        try:
            with cluster.http() as http:
                localhost = {
                    "type": "Proxy",
                    "hostName": "localhost",
                    "negotiateClientCertificate": True,
                    "defaultSslBinding": True,
                }
                body = {"properties": {"hostnameConfigurations": [localhost]}}
                assert http.patch("/", json=body).is_success
            yield cluster
        finally:
            with ThreadPoolExecutor(len(NODES)) as pool:
                list(pool.map(Served.stop, nodes.values()))


def _api(http: httpx.Client, name: str, backend: EchoBackend, policy: str | None = None) -> None:
    api = {"displayName": name, "path": name, "serviceUrl": backend.url}
    assert http.put(f"/apis/{name}", json={"properties": api}).is_success
    operation = {"displayName": "all", "method": "*", "urlTemplate": "/*"}
    written = http.put(f"/apis/{name}/operations/all", json={"properties": operation})
    assert written.is_success, written.text
    if policy is not None:
        body = {"properties": {"format": "rawxml", "value": policy}}
        assert http.put(f"/apis/{name}/policies/policy", json=body).is_success


def _presented(served: Served, sni: str) -> str:
    """The SHA-1 thumbprint of the certificate the node's gateway presents for `sni`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", served.gateway_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        return hashlib.sha1(tls.getpeercert(binary_form=True)).hexdigest().upper()


def _thumbprint(issued: pki.Issued) -> str:
    return hashlib.sha1(issued.der).hexdigest().upper()


def test_a_write_on_node1_is_served_by_nodes_2_and_3_within_2_seconds(
    cluster: Cluster, backend: EchoBackend
) -> None:
    name = f"fresh{secrets.token_hex(3)}"
    clients = {node: cluster.gateway(node) for node in ("node2", "node3")}
    for client in clients.values():
        assert client.get(f"/{name}/x").status_code == 404
    with cluster.http(wait=False) as http:
        _api(http, name, backend)
    written = time.monotonic()
    served_after: dict[str, float] = {}
    while len(served_after) < len(clients) and time.monotonic() - written < 15:
        for node, client in clients.items():
            if node not in served_after and client.get(f"/{name}/x").status_code == 200:
                served_after[node] = time.monotonic() - written
    for client in clients.values():
        client.close()
    assert set(served_after) == set(clients), served_after
    assert max(served_after.values()) < SERVED_WITHIN, served_after


def test_every_node_is_listed_as_a_live_gateway(cluster: Cluster) -> None:
    with cluster.http("node2") as http:
        listed = http.get("/gateways").json()["value"]
        revision = http.get("/status").json()["properties"]["revision"]
    by_name = {gateway["name"]: gateway for gateway in listed}
    assert set(by_name) >= set(NODES)
    for node in NODES:
        gateway = by_name[node]
        assert gateway["type"] == "Microsoft.ApiManagement/service/gateways"
        properties = gateway["properties"]
        assert properties["locationData"] == {"name": node}
        assert properties["live"] is True and properties["version"] == __version__
        assert properties["revision"] is not None and properties["revision"] <= revision
        assert properties["lastError"] is None and properties["heartbeat"]
    shown = cluster.nodes["node3"].ok("status")
    assert all(node in shown for node in NODES), shown
    table = cluster.nodes["node3"].ok("gateway", "list")
    assert all(node in table for node in NODES) and "live" in table, table


def test_a_gateways_certificate_authorities_apply_to_its_node_only(
    cluster: Cluster, backend: EchoBackend, tmp_path: Path
) -> None:
    authority, service_ca = pki.ca("Node3 Clients CA"), pki.ca("Service Clients CA")
    client = write_identity(authority.issue("node3 client"), tmp_path, "node3-client")
    other = write_identity(service_ca.issue("service client"), tmp_path, "service-client")
    root = {"storeName": "Root", "encodedCertificate": base64.b64encode(service_ca.der).decode()}
    with cluster.http() as http:
        body = {"properties": {"data": base64.b64encode(authority.der).decode()}}
        assert http.put("/certificates/node3ca", json=body).is_success
        assert http.patch("/", json={"properties": {"certificates": [root]}}).is_success
        cluster.nodes["node2"].ok("gateway", "add-ca", "node3", "node3ca")
        try:
            listed = http.get("/gateways/node3/certificateAuthorities").json()["value"]
            trusted = [(ca["name"], ca["properties"]["isTrusted"]) for ca in listed]
            assert trusted == [("node3ca", True)]
            _api(http, "pernode", backend, deny_when(UNVERIFIED))
            in_use = http.delete("/certificates/node3ca", headers={"If-Match": "*"})
            assert in_use.status_code == 409
            assert cluster.nodes["node3"].curl_status("/pernode/x", client) == 200
            assert cluster.nodes["node1"].curl_status("/pernode/x", client) == 403
            assert cluster.nodes["node2"].curl_status("/pernode/x", client) == 403
            # as APIM: a gateway with CAs of its own trusts only those, not the service's
            assert cluster.nodes["node3"].curl_status("/pernode/x", other) == 403
            assert cluster.nodes["node1"].curl_status("/pernode/x", other) == 200
        finally:  # the module's other tests see the service's CAs on every node
            cluster.nodes["node2"].ok("gateway", "remove-ca", "node3", "node3ca")
            assert http.patch("/", json={"properties": {"certificates": []}}).is_success


def test_a_key_vault_rotation_reaches_every_node_and_one_node_reads_the_vault(
    cluster: Cluster,
) -> None:
    issuer = pki.ca("Rotation CA")
    first, second = pki.server(issuer, "kv.test"), pki.server(issuer, "kv.test")
    cluster.bao.put_pfx("nodes/kv", first.pfx(None))
    with cluster.http() as http:
        reference = {"keyVault": {"secretIdentifier": cluster.bao.url("nodes/kv")}}
        stored = http.put("/certificates/kv", json={"properties": reference})
        assert stored.is_success, stored.text
        hostnames = http.get("/").json()["properties"]["hostnameConfigurations"]
        kv = {"type": "Proxy", "hostName": "kv.test", "certificateId": "kv"}
        body = {"properties": {"hostnameConfigurations": [*hostnames, kv]}}
        assert http.patch("/", json=body).is_success
    for served in cluster.nodes.values():
        assert _presented(served, "kv.test") == _thumbprint(first)
    before = cluster.audit_lines()
    cluster.bao.put_pfx("nodes/kv", second.pfx(None))
    for served in cluster.nodes.values():
        wait_until(lambda s=served: _presented(s, "kv.test") == _thumbprint(second), timeout=30)
    readers = wait_until(
        lambda: (reads := cluster.vault_reads("nodes/kv", before)) and len(reads) >= 3 and reads,
        timeout=30,
    )
    assert len(set(readers)) == 1, readers


def test_a_killed_node_costs_the_others_no_request_and_catches_up_on_restart(
    cluster: Cluster, backend: EchoBackend
) -> None:
    with cluster.http() as http:
        _api(http, "load", backend)
    failures: dict[str, list] = {"node1": [], "node3": []}
    warmed = {node: threading.Event() for node in failures}

    def load(node: str) -> None:
        with cluster.gateway(node) as client:
            for number in range(LOAD_REQUESTS):
                try:
                    status = client.get(f"/load/{number}").status_code
                except httpx.HTTPError as error:
                    status = repr(error)
                if status != 200:
                    failures[node].append((number, status))
                if number == KILL_AFTER:
                    warmed[node].set()

    loaders = [threading.Thread(target=load, args=(node,)) for node in failures]
    for loader in loaders:
        loader.start()
    for event in warmed.values():
        assert event.wait(30)
    node2 = cluster.nodes["node2"]
    node2.process.kill()
    node2.process.wait(10)
    for loader in loaders:
        loader.join(60)
    assert failures == {"node1": [], "node3": []}

    def node2_live() -> bool:
        with cluster.http("node1") as http:
            return http.get("/gateways/node2").json()["properties"]["live"]

    wait_until(lambda: not node2_live(), timeout=30)
    with cluster.http() as http:
        _api(http, "whiledown", backend)
        written = http.get("/status").json()["properties"]["revision"]
    node2.restart()
    assert node2.curl_status("/whiledown/x") == 200
    with cluster.http("node2") as http:
        gateway = http.get("/gateways/node2").json()["properties"]
    assert gateway["live"] is True and gateway["revision"] >= written


@pytest.fixture
def crl_server() -> Iterator[tuple[CrlServer, str]]:
    """The asyncio CRL server on its own loop in a thread (the nodes are other processes)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = CrlServer()
    url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server, url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_crl_is_downloaded_by_one_node_and_read_by_the_others_also_when_it_dies(
    cluster: Cluster, backend: EchoBackend, crl_server: tuple[CrlServer, str], tmp_path: Path
) -> None:
    server, url = crl_server
    authority = pki.ca("Shared CRL CA")
    good = write_identity(authority.issue("crl good", crl_url=url), tmp_path, "crl-good")
    revoked = authority.issue("crl revoked", crl_url=url)
    bad = write_identity(revoked, tmp_path, "crl-bad")
    server.body = pki.crl(authority, [revoked.cert.serial_number]).public_bytes(Encoding.DER)
    root = {"storeName": "Root", "encodedCertificate": base64.b64encode(authority.der).decode()}
    with cluster.http() as http:
        service = {"certificates": [root], "clientCertificateTrust": {"useSystemRoots": False}}
        assert http.patch("/", json={"properties": service}).is_success
        _api(http, "crlshared", backend, deny_when(UNVERIFIED))
    node1, node2, node3 = (cluster.nodes[node] for node in NODES)
    try:
        wait_until(lambda: node3.curl_status("/crlshared/x", good) == 200, timeout=15)
        for served in (node1, node2, node3):
            assert served.curl_status("/crlshared/x", good) == 200
            assert served.curl_status("/crlshared/x", bad) == 403
        assert server.hits == 1
        node1.process.kill()
        node1.process.wait(10)
        node2.restart()  # a fresh worker with an empty memory: it reads the stored row
        for served in (node2, node3):
            assert served.curl_status("/crlshared/x", bad) == 403
            assert served.curl_status("/crlshared/x", good) == 200
        assert server.hits == 1
    finally:
        if node1.process.poll() is not None:
            node1.restart()
        with cluster.http() as http:
            assert http.delete("/apis/crlshared", headers={"If-Match": "*"}).is_success
            service = {"certificates": [], "clientCertificateTrust": {"useSystemRoots": True}}
            assert http.patch("/", json={"properties": service}).is_success


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("mysql://db.example/certgate", "unsupported database 'mysql'"),
        ("certgate.sqlite", "--store must be a URL"),
        ("postgresql://certgate:hunter2@127.0.0.1:1/certgate", "cannot open the store"),
    ],
)
def test_a_store_that_cannot_be_used_stops_serve_with_a_clear_error(
    tmp_path: Path, store: str, expected: str
) -> None:
    argv = [CERTGATE, "serve", "--data-dir", str(tmp_path / "data"), "--store", store]
    argv += ["--management-port", str(free_port()), "--gateway-port", str(free_port())]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=client_env())
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--lease-timeout", "0"), ("--lease-timeout", "nan"), ("--revision-full-poll-interval", "-1")],
)
def test_node_timings_that_would_disable_failover_are_refused(
    tmp_path: Path, flag: str, value: str
) -> None:
    argv = [CERTGATE, "serve", "--data-dir", str(tmp_path / "data"), flag, value]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=client_env())
    assert result.returncode == 1
    assert f"{flag} must be > 0 seconds" in result.stderr, result.stderr
