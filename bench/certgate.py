"""certgate configured like the nginx reference proxy, through its management API (APIM ARM shapes).

Two APIs on one gateway: `bench` routes to a backend entity whose credentials carry the gateway's
client certificate (the outbound leg is mTLS, issue 6), and `bench-policy` does the same behind
the client-certificate thumbprint check from APIM's documentation (issue 4's policy, end to end).
"""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.pki import PFX_PASSWORD, BenchPki
from bench.procs import Service
from certgate.client import ManagementClient

API = "bench"
POLICY_API = "bench-policy"
BACKEND_ID = "bench-backend"
SERVER_CERT_ID = "bench-server"
GATEWAY_CERT_ID = "bench-gateway"

_SECTIONS = "<backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error>"

ROUTE_POLICY = (
    "<policies><inbound><base />"
    f'<set-backend-service backend-id="{BACKEND_ID}" />'
    f"</inbound>{_SECTIONS}</policies>"
)

THUMBPRINT_POLICY = """<policies>
    <inbound>
        <base />
        <choose>
            <when condition="@(context.Request.Certificate == null || context.Request.Certificate.Thumbprint != "{thumbprint}")" >
                <return-response>
                    <set-status code="403" reason="Invalid client certificate" />
                </return-response>
            </when>
        </choose>
        <set-backend-service backend-id="{backend}" />
    </inbound>
    {sections}
</policies>"""  # noqa: E501
"""The thumbprint check from APIM's client-certificate how-to, pasted as operators paste it."""


@dataclass(frozen=True)
class Certgate:
    service: Service
    gateway_port: int
    management_url: str
    data_dir: Path


def certgate_command() -> list[str]:
    """The `certgate` script installed beside this interpreter (the project's venv)."""
    script = Path(sys.executable).with_name("certgate")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from certgate.cli import main; main()"]


def start_certgate(
    work: Path,
    management_port: int,
    gateway_port: int,
    *,
    name: str = "certgate",
    source: Path | None = None,
) -> Certgate:
    """`certgate serve` with its data in `work/<name>-data`; `source` runs another checkout's
    code (a git worktree) with this interpreter and its packages."""
    data_dir = work / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    command, env = certgate_command(), None
    if source is not None:
        # -P: the working directory (this checkout) must not shadow `source` on sys.path
        command = [sys.executable, "-P", "-c", "from certgate.cli import main; main()"]
        env = {**os.environ, "PYTHONPATH": str(source)}
    argv = [
        *command,
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--management-port",
        str(management_port),
        "--gateway-port",
        str(gateway_port),
        "--workers",
        "1",
        "--log-level",
        "WARNING",
    ]
    service = Service(name, argv, work / "logs" / f"{name}.out", env)
    try:
        service.wait_listening(management_port, timeout=60)
        service.wait_listening(gateway_port, timeout=30)
    except BaseException:
        service.stop()
        raise
    return Certgate(service, gateway_port, f"https://127.0.0.1:{management_port}", data_dir)


def management_client(certgate: Certgate) -> ManagementClient:
    """A client of `certgate`'s management API, with the token and dev CA of its data dir."""
    token = (certgate.data_dir / "admin.token").read_text().strip()
    return ManagementClient(certgate.management_url, token, str(certgate.data_dir / "dev-ca.pem"))


def configure(client: ManagementClient, pki: BenchPki, backend_url: str) -> None:
    """Server certificate, negotiating hostname, trusted CA, backend entity, both APIs."""
    client.put(f"certificates/{SERVER_CERT_ID}", _pfx_body(pki.server.pfx(PFX_PASSWORD)))
    client.put(f"certificates/{GATEWAY_CERT_ID}", _pfx_body(pki.gateway.pfx(PFX_PASSWORD)))
    hostname = {
        "type": "Proxy",
        "hostName": "localhost",
        "certificateId": SERVER_CERT_ID,
        "negotiateClientCertificate": True,
        "defaultSslBinding": True,
    }
    root = {"encodedCertificate": base64.b64encode(pki.ca.der).decode(), "storeName": "Root"}
    client.patch("", {"properties": {"hostnameConfigurations": [hostname], "certificates": [root]}})
    backend = {
        "url": backend_url,
        "protocol": "http",
        "credentials": {"certificateIds": [GATEWAY_CERT_ID]},
    }
    client.put(f"backends/{BACKEND_ID}", {"properties": backend})
    thumbprint_policy = THUMBPRINT_POLICY.format(
        thumbprint=pki.loadgen.thumbprint, backend=BACKEND_ID, sections=_SECTIONS
    )
    for api, policy in ((API, ROUTE_POLICY), (POLICY_API, thumbprint_policy)):
        api_properties = {
            "displayName": api,
            "path": api,
            "serviceUrl": backend_url,
            "protocols": ["https"],
        }
        client.put(f"apis/{api}", {"properties": api_properties})
        operation = {"displayName": "any GET", "method": "GET", "urlTemplate": "/*"}
        client.put(f"apis/{api}/operations/get", {"properties": operation})
        client.put(
            f"apis/{api}/policies/policy",
            {"properties": {"format": "rawxml", "value": policy}},
        )
    if client.last_revision is not None:  # builds before the worker status answered at once
        client.wait_for_revision(client.last_revision, timeout=60)  # every worker serves it all


def _pfx_body(pfx: bytes) -> dict:
    return {"properties": {"data": base64.b64encode(pfx).decode(), "password": PFX_PASSWORD}}
