"""nginx as the mTLS backend (perf-anchors 4.1) and as the reference mTLS proxy (4.2)."""

from __future__ import annotations

from pathlib import Path

from bench.pki import BenchPki
from bench.procs import Service

BODY = '{"status":"ok","service":"backend","note":"fixed 100-byte anchor response","pad":"xxxxxxxxxxxxxxx"}\\n'  # noqa: E501
"""The fixed 100-byte response of perf-anchors 4.1, as an nginx string (\\n is nginx's escape)."""

PREFIX = "bench"
"""Both proxies serve the backend under /bench/, as certgate's API path does."""

_COMMON = """daemon off;
master_process on;
user root;
worker_processes 1;
pid {work}/run/{name}.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp/{name}-body; proxy_temp_path {work}/tmp/{name}-proxy;
    fastcgi_temp_path {work}/tmp/{name}-fcgi; uwsgi_temp_path {work}/tmp/{name}-uwsgi;
    scgi_temp_path {work}/tmp/{name}-scgi;
    keepalive_requests 100000;
    keepalive_timeout 65s;
    ssl_protocols TLSv1.2 TLSv1.3;
{body}
}}
"""

_BACKEND = """    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki.server_pem}; ssl_certificate_key {pki.server_key};
        ssl_verify_client on; ssl_client_certificate {pki.ca_pem}; ssl_verify_depth 2;
        default_type application/json;
        location /echo {{ return 200 "upstream_client=$ssl_client_s_dn proto=$ssl_protocol\\n"; }}
        location / {{ return 200 '{body}'; }}
    }}"""

_PROXY = """    upstream backend_mtls {{
        server 127.0.0.1:{backend_port};
        keepalive 32;
        keepalive_requests 100000;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki.server_pem}; ssl_certificate_key {pki.server_key};
        ssl_verify_client optional_no_ca; ssl_client_certificate {pki.ca_pem};
        location /{prefix}/ {{
            proxy_pass https://backend_mtls/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Client-Verify $ssl_client_verify;
            proxy_set_header X-Client-S-DN $ssl_client_s_dn;
            proxy_ssl_certificate {pki.gateway_pem};
            proxy_ssl_certificate_key {pki.gateway_key};
            proxy_ssl_trusted_certificate {pki.ca_pem};
            proxy_ssl_verify on; proxy_ssl_verify_depth 2; proxy_ssl_name localhost;
            proxy_ssl_session_reuse on;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
        }}
    }}"""


def backend_config(work: Path, pki: BenchPki, port: int) -> str:
    body = _BACKEND.format(port=port, pki=pki, body=BODY)
    return _COMMON.format(work=work, name="backend", body=body)


def proxy_config(work: Path, pki: BenchPki, port: int, backend_port: int) -> str:
    body = _PROXY.format(port=port, backend_port=backend_port, pki=pki, prefix=PREFIX)
    return _COMMON.format(work=work, name="proxy", body=body)


def start_nginx(work: Path, name: str, config: str) -> Service:
    """Writes `work/conf/NAME.conf` and runs nginx in the foreground on it (its own error log)."""
    for sub in ("conf", "run", "tmp", "logs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    conf = work / "conf" / f"{name}.conf"
    conf.write_text(config)
    argv = ["nginx", "-p", str(work), "-c", str(conf), "-e", str(work / "logs" / f"{name}.err")]
    return Service(f"nginx {name}", argv, work / "logs" / f"{name}.out")
