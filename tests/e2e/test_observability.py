"""Observability of a real `certgate serve --workers 2`: the access log of real mTLS requests made
with curl, the Prometheus scrape summed over both workers, APIM's gateway status endpoint, and the
certificate expiry warning in the supervisor's log."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import pki
from tests.e2e.conftest import Clients
from tests.e2e.serve import EchoBackend, Served, free_port
from tests.gateway.support import ClientFiles, write_identity

DEADLINE = 15.0
TRACE_POLICY = """<policies>
  <inbound>
    <base />
    <trace source="audit" severity="information">
      <message>@("verified=" + context.Request.Certificate?.Verify())</message>
      <metadata name="client"
                value="@(context.Request.Certificate?.Thumbprint ?? &quot;none&quot;)" />
    </trace>
    <emit-metric name="calls" namespace="e2e"><dimension name="API ID" /></emit-metric>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>
"""


@dataclass
class Observed:
    served: Served
    trusted: pki.Issued
    trusted_files: ClientFiles
    soon: pki.Issued  # an uploaded certificate that expires in 10 days


@pytest.fixture(scope="module")
def observed(tmp_path_factory, backend: EchoBackend, clients: Clients) -> Iterator[Observed]:
    """Two workers writing one access log; an uploaded certificate that expires in 10 days."""
    cwd = tmp_path_factory.mktemp("observed")
    trusted = clients.root.issue("observed client")
    options = ("--access-log", "access.log", "--expiry-check-interval", "0.5")
    served = Served.start(cwd, workers=2, options=options)
    soon = pki.issue(
        "expires soon", not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=10, hours=1)
    )
    try:
        served.ok("ca", "add", str(clients.root_file), "--store", "root")
        served.ok("hostname", "set", "localhost", "--negotiate-client-certificate", "--default")
        served.ok("api", "create", "echo", "--path", "echo", "--service-url", backend.url)
        served.ok("operation", "add", "echo", "all", "--method", "*", "--url-template", "/*")
        served.ok("api", "create", "spread", "--path", "spread", "--service-url", backend.url)
        served.ok("operation", "add", "spread", "all", "--method", "*", "--url-template", "/*")
        closed = f"http://127.0.0.1:{free_port()}"
        served.ok("api", "create", "down", "--path", "down", "--service-url", closed)
        served.ok("operation", "add", "down", "all", "--method", "*", "--url-template", "/*")
        policy = cwd / "trace.xml"
        policy.write_text(TRACE_POLICY)
        served.ok("policy", "set", "--api", "echo", str(policy))
        served.ok("policy", "set", "--api", "spread", str(policy))
        with served.http() as http:
            pfx = base64.b64encode(soon.pfx(None)).decode()
            reply = http.put("/certificates/soon", json={"properties": {"data": pfx}})
            assert reply.is_success, reply.text
        yield Observed(served, trusted, write_identity(trusted, cwd, "trusted"), soon)
    finally:
        served.stop()


def _access_lines(served: Served, count: int, url_end: str = "") -> list[dict]:
    """The access log lines whose Url ends with `url_end`, once there are at least `count` of
    them (waiting, with a deadline, for the workers' flush)."""
    path = served.cwd / "access.log"
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        found = [entry for entry in map(json.loads, lines) if entry["Url"].endswith(url_end)]
        if len(found) >= count:
            return found
        time.sleep(0.05)  # polling interval of the condition, not synchronisation
    raise AssertionError(f"fewer than {count} access log lines after {DEADLINE}s")


def _scrape(served: Served) -> dict[str, list]:
    reply = httpx.get(
        f"{served.management_url}/metrics",
        headers={"Authorization": f"Bearer {served.token}"},
        verify=ssl.create_default_context(cafile=served.dev_ca),
    )
    assert reply.status_code == 200, reply.text
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def _value(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_access_log_line_of_a_real_mtls_request(observed: Observed, clients: Clients) -> None:
    served = observed.served
    assert served.curl_status("/echo/hello?x=1", observed.trusted_files) == 200
    assert served.curl_status("/echo/self", clients.self_signed) == 200  # the policy only traces
    status, body = served.curl("/down/x", observed.trusted_files)
    assert status == 500
    activity = json.loads(body)["activityId"]
    [line] = _access_lines(served, 1, "/echo/hello?x=1")
    assert line["Url"] == f"https://localhost:{served.gateway_port}/echo/hello?x=1"
    assert (line["ApiId"], line["OperationId"], line["Method"]) == ("echo", "all", "GET")
    assert (line["ResponseCode"], line["BackendResponseCode"]) == (200, 200)
    assert line["CallerIpAddress"] == "127.0.0.1"
    assert line["ClientTlsVersion"] == "TLSv1.3"
    assert line["ClientProtocol"] in ("HTTP/1.1", "HTTP/2")
    assert line["ClientCertificateThumbprint"] == observed.trusted.thumbprint
    assert line["ClientCertificateSubject"] == "CN=observed client"
    assert line["ClientCertificateIssuer"] == "CN=E2E Clients Root"
    assert line["ClientCertificateVerified"] is True
    assert 0 <= line["BackendTime"] <= line["TotalTime"]
    assert line["ResponseSize"] > 0 and line["RequestSize"] == 0
    assert line["IsRequestSuccess"] is True
    assert line["TraceRecords"] == [
        {
            "source": "audit",
            "severity": "information",
            "message": "verified=True",
            "metadata": {"client": observed.trusted.thumbprint},
        }
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["TimeGenerated"])

    [refused] = _access_lines(served, 1, "/echo/self")
    assert refused["ClientCertificateThumbprint"] == clients.self_signed_cert.thumbprint
    assert refused["ClientCertificateVerified"] is False
    assert refused["ClientCertificateVerifyReason"]
    assert refused["TraceRecords"][0]["message"] == "verified=False"

    [failed] = _access_lines(served, 1, "/down/x")
    assert failed["CorrelationId"] == activity  # the id the client saw in the error
    assert (failed["ResponseCode"], failed["BackendResponseCode"]) == (500, None)
    assert failed["LastErrorSource"] == "forward-request"
    assert failed["LastErrorReason"] == "BackendConnectionFailure"
    assert failed["LastErrorMessage"]
    assert failed["IsRequestSuccess"] is False


def test_the_access_log_is_switched_off_and_on_by_the_management_api(observed: Observed) -> None:
    served = observed.served
    with served.http() as http:  # each write returns once every worker serves it
        off = http.patch("/", json={"properties": {"accessLog": {"enabled": False}}})
        assert off.status_code == 200
        assert off.json()["properties"]["accessLog"] == {"enabled": False}
        try:
            for _ in range(4):
                assert served.curl_status("/echo/quiet", observed.trusted_files) == 200
        finally:
            http.patch("/", json={"properties": {"accessLog": {"enabled": True}}})
        bad = http.patch("/", json={"properties": {"accessLog": {"enabled": "no"}}})
        assert bad.status_code == 400 and bad.json()["error"]["details"][0]["target"] == (
            "accessLog.enabled"
        )
    sent, pids = 0, set()
    while len(pids) < 2 and sent < 40:  # a line from each worker: both flushed what came before
        for _ in range(8):
            assert served.curl_status("/echo/loud", observed.trusted_files) == 200
        sent += 8
        pids = {line["ProcessId"] for line in _access_lines(served, sent, "/echo/loud")}
    assert len(pids) == 2
    assert not [line for line in _access_lines(served, 0) if line["Url"].endswith("/echo/quiet")]


def test_metrics_sum_both_workers_and_list_certificate_expiry(observed: Observed) -> None:
    served = observed.served
    before = _scrape(served)
    ok = dict(api="spread", operation="all", status_class="2xx")  # only this test calls it
    handshakes = _value(before, "certgate_tls_handshakes_total", outcome="ok")
    presented = _value(before, "certgate_client_certificates_presented_total")
    sent = 0
    pids: set[int] = set()
    while len(pids) < 2 and sent < 40:  # fresh connections: SO_REUSEPORT spreads them
        for _ in range(8):
            assert served.curl_status("/spread/x", observed.trusted_files) == 200
        sent += 8
        pids = {line["ProcessId"] for line in _access_lines(served, sent, "/spread/x")}
    assert len(pids) == 2, "both workers served requests"

    deadline = time.monotonic() + DEADLINE  # the workers add their sums once a second
    after = _scrape(served)
    # (a worker writes its request sums, then its backend sums: a scrape may fall in between)
    while (
        _value(after, "certgate_request_duration_seconds_count", **ok) < sent
        or _value(after, "certgate_backend_duration_seconds_count", api="spread") < sent
    ):
        assert time.monotonic() < deadline, "the scrape never showed every request"
        time.sleep(0.1)  # polling interval of the condition, not synchronisation
        after = _scrape(served)
    assert _value(after, "certgate_request_duration_seconds_count", **ok) == sent
    assert _value(after, "certgate_tls_handshakes_total", outcome="ok") >= handshakes + sent
    assert _value(after, "certgate_client_certificates_presented_total") >= presented + sent
    assert _value(after, "certgate_backend_duration_seconds_count", api="spread") == sent
    emitted = [  # the emit-metric policy
        s.value
        for s in after["certgate_emitted_metric_total"]
        if s.labels == {"name": "calls", "dimensions": "API ID=spread,Namespace=e2e"}
    ]
    assert emitted == [sent]
    verified = _value(after, "certgate_client_certificate_verifications_total", outcome="ok")
    assert verified >= sent  # one Verify() per connection (the trace policy)
    revisions = after["certgate_config_revision"]
    assert len({s.labels["pid"] for s in revisions}) == 2
    expiry = {
        (s.labels["kind"], s.labels["id"]): s
        for s in after["certgate_certificate_not_after_seconds"]
    }
    soon = expiry["certificate", "soon"]
    assert soon.labels["thumbprint"] == observed.soon.thumbprint
    assert soon.labels["source"] == "upload"
    assert soon.value == observed.soon.cert.not_valid_after_utc.timestamp()
    assert expiry["ca", "Root"].labels["source"] == "upload"
    assert expiry["hostname", "development"].labels["source"] == "development"


def test_gateway_status_endpoint_needs_no_client_certificate(observed: Observed) -> None:
    served = observed.served
    assert served.curl("/status-0123456789abcdef") == (200, "")
    assert served.curl_status("/status-0123456789abcdef/more") == 404  # routed as usual


def test_a_certificate_expiring_in_10_days_gets_the_14_day_warning_once(
    observed: Observed,
) -> None:
    served = observed.served
    pattern = re.compile(
        r"^\S+ \S+ WARNING certgate.expiry \[MainProcess \d+\] certificate CN=expires soon "
        rf"\(thumbprint {observed.soon.thumbprint}\) expires in 10 days at \S+ "
        r"\(14-day warning\); used as: certificate soon \(upload\)$",
        re.MULTILINE,
    )
    deadline = time.monotonic() + DEADLINE
    while not pattern.search(served.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval of the condition, not synchronisation
    assert len(pattern.findall(served.log.read_text())) == 1
    state = json.loads((served.data_dir / "expiry-warnings.json").read_text())
    assert f"{observed.soon.thumbprint}/14" in state  # not repeated within the day


def test_a_huge_url_still_gives_one_whole_json_line(observed: Observed) -> None:
    """6,000 characters of path (the head limit allows 64 kB): the line is cut, stays valid JSON
    and shorter than PIPE_BUF, so it cannot interleave with another worker's line."""
    served = observed.served
    path = "/echo/" + "a" * 6000
    assert served.curl_status(path, observed.trusted_files) == 200
    [line] = _access_lines(served, 1, "a" * 100 + "...")
    assert line["Truncated"] is True
    assert line["Url"].startswith(f"https://localhost:{served.gateway_port}/echo/aaa")
    assert len(line["Url"]) == 256 + 3
    assert line["ClientCertificateThumbprint"] == observed.trusted.thumbprint
    raw = [r for r in (served.cwd / "access.log").read_bytes().split(b"\n") if b"Truncated" in r]
    assert len(raw[0]) + 1 < 4096
