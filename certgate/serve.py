"""`certgate serve`: the management API, the gateway workers and the key vault refresher.

Process model: the first process serves the management API (HTTPS), one gateway worker and the
key vault refresher; `--workers N` adds N-1 gateway-only processes (`certgate.gateway.workers`).
All gateway processes listen on the same ports (SO_REUSEPORT). A management write rebuilds this
process's Snapshot before it returns; the other workers poll the store's revision and rebuild when
it moves, so every worker serves a change within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import uvicorn
import uvloop

from certgate.config.bootstrap import initialise_data_dir
from certgate.config.datadir import DataDirLayout
from certgate.config.sealing import Sealer, load_key
from certgate.config.snapshot import SnapshotBuilder
from certgate.config.store import Store
from certgate.gateway.config import GatewayConfig
from certgate.gateway.server import GatewayServer
from certgate.gateway.workers import WorkerPool
from certgate.limits import Limits, limits_from_args

log = logging.getLogger("certgate.serve")
REVISION_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Listen:
    host: str
    gateway_port: int
    http_port: int | None
    reuse_port: bool
    limits: Limits


def serve(args: argparse.Namespace) -> None:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    data_dir = initialise_data_dir(args.data_dir.resolve())
    data_dir.store.close()  # created and migrated; every process opens its own
    layout, token = data_dir.layout, data_dir.admin_token
    key = load_key(layout.data_key)
    listen = Listen(
        args.host,
        args.gateway_port,
        args.http_port,
        reuse_port=args.workers > 1,
        limits=limits_from_args(args),
    )
    others = _start_other_workers(args.workers - 1, layout, listen)
    _announce(args, layout)
    try:
        uvloop.run(_main(args, layout, key, token, listen))
    finally:
        if others is not None:
            others.stop()


def _announce(args: argparse.Namespace, layout: DataDirLayout) -> None:
    management = f"https://{args.host}:{args.management_port}"
    token_hint = (
        "$CERTGATE_ADMIN_TOKEN"
        if os.environ.get("CERTGATE_ADMIN_TOKEN")
        else f"$(cat {_shown(layout.admin_token)})"
    )
    print(f"certgate management API: {management}  (OpenAPI: {management}/openapi.json)")
    print(f"certgate gateway:        https://{args.host}:{args.gateway_port}")
    if args.http_port:
        print(f"certgate gateway (HTTP): http://{args.host}:{args.http_port}")
    print(f"admin token:             {_shown(layout.admin_token)}")
    print(f"development CA:          {_shown(layout.dev_ca)}")
    print("try:")
    print(
        f'  curl --cacert {_shown(layout.dev_ca)} -H "Authorization: Bearer {token_hint}" '
        f"{management}/certificates"
    )
    print(flush=True)


def _shown(path: Path) -> str:
    """Paths relative to the working directory when they are below it, as a person would type."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


async def _main(
    args: argparse.Namespace, layout: DataDirLayout, key: bytes, token: str, listen: Listen
) -> None:
    from certgate.management.api_import import configure_api_import
    from certgate.management.app import create_management_app

    configure_api_import(args.api_import_allow_url, listen.limits)
    store = Store(layout.database_url, Sealer(key), migrate=False)
    worker = await _GatewayWorker.start(store, layout, listen)
    refresher = _start_refresher(args, store, worker)
    app = create_management_app(
        store, admin_token=token, on_change=worker.rebuild, limits=listen.limits
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.management_port,
        ssl_certfile=str(layout.dev_server),
        log_level="warning",
        loop="none",
        lifespan="off",
    )
    management = uvicorn.Server(config)
    management.install_signal_handlers = lambda: None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    served = asyncio.create_task(management.serve())
    polling = asyncio.create_task(worker.follow_revisions())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({served, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    management.should_exit = True
    polling.cancel()
    if refresher is not None:
        await refresher.stop()
    await served
    await worker.close()
    store.close()


def _start_refresher(args: argparse.Namespace, store: Store, worker: _GatewayWorker):
    from certgate.certs.keyvault.service import start_refresher

    return start_refresher(
        store,
        interval=args.key_vault_refresh_interval,
        on_change=worker.rebuild,
        token_file=args.vault_token_file,
        role_id_file=args.vault_role_id_file,
        secret_id_file=args.vault_secret_id_file,
    )


class _GatewayWorker:
    """One process's gateway: its Snapshot, its server, and the rebuild when the store moves."""

    def __init__(self, store: Store, builder: SnapshotBuilder, server: GatewayServer) -> None:
        self._store = store
        self._builder = builder
        self._server = server
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, store: Store, layout: DataDirLayout, listen: Listen) -> _GatewayWorker:
        builder = SnapshotBuilder(
            store, dev_server_pem=layout.dev_server.read_bytes(), limits=listen.limits
        )
        server = GatewayServer(await asyncio.to_thread(builder.build), limits=listen.limits)
        await server.start(
            listen.host, listen.gateway_port, listen.http_port, reuse_port=listen.reuse_port
        )
        return cls(store, builder, server)

    async def rebuild(self) -> None:
        """Compiles a new Snapshot if the store moved; a bad one is logged and the old one kept."""
        async with self._lock:
            if self._store.revision() == self._builder.revision:
                return
            try:
                config = await asyncio.to_thread(self._builder.build)
            except Exception:
                log.exception(
                    "configuration did not compile; still serving revision %s",
                    self._builder.revision,
                )
                return
            self._server.update(config)

    async def follow_revisions(self) -> None:
        while True:
            await asyncio.sleep(REVISION_POLL_SECONDS)
            if await asyncio.to_thread(self._store.revision) != self._builder.revision:
                await self.rebuild()

    async def close(self) -> None:
        await self._server.close()
        self._builder.close()
        await self._builder.crl_fetcher.aclose()


def _start_other_workers(count: int, layout: DataDirLayout, listen: Listen) -> WorkerPool | None:
    if count < 1:
        return None
    pool = WorkerPool(
        count,
        functools.partial(_worker_config, layout.root, listen.limits),
        host=listen.host,
        https_port=listen.gateway_port,
        http_port=listen.http_port,
        poll_interval=REVISION_POLL_SECONDS,
        limits=listen.limits,
    )
    pool.start()
    return pool


_worker_builder: SnapshotBuilder | None = None


def _worker_config(root: Path, limits: Limits, previous: object) -> GatewayConfig | None:
    """Runs inside a spawned worker: the first config, then a new one when the store moved."""
    global _worker_builder
    if _worker_builder is None:
        layout = DataDirLayout(root)
        store = Store(layout.database_url, Sealer(load_key(layout.data_key)), migrate=False)
        _worker_builder = SnapshotBuilder(
            store, dev_server_pem=layout.dev_server.read_bytes(), limits=limits
        )
    builder = _worker_builder
    if previous is not None and builder.store.revision() == builder.revision:
        return None
    return builder.build()
