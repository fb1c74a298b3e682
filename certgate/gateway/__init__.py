"""The data plane: TLS with per-hostname client-certificate negotiation, HTTP/1.1 and HTTP/2,
routing, the per-request pipeline run, and worker processes.

Entry points: `config.build_gateway_config` (-> `GatewayConfig`), `server.GatewayServer`
(`start`, `update`, `close`), `workers.WorkerPool` (`certgate serve` runs
them: `certgate/serve.py`).
"""
