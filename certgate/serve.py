"""`certgate serve`: a supervisor serving the management API, and N equal gateway workers.

Process model:
- The first process (the supervisor) prepares the data directory, makes sure every port is free
  (`certgate.gateway.ports`: a port another process holds is an error naming it, before anything
  starts or prints), starts `--workers` gateway processes (`WorkerPool`), and then serves the
  management API (HTTPS) and runs the key vault refresher on its own event loop. It carries no
  gateway traffic, so a loaded gateway or a slow policy never stalls management.
- Every gateway worker follows the store's revision (`RevisionFollower`, every
  `--revision-poll-interval` seconds) and records the revision it serves and its last compile
  error in the store (`certgate.config.status`; `GET /status`, `certgate status`). A management
  write returns as soon as it is stored, with the new revision (`X-Certgate-Revision`); the CLI
  then waits until every live worker serves it.
- Workers exit when the supervisor dies, even by SIGKILL. If a worker dies, the supervisor stops
  the others and exits with status 1, so a service manager restarts the gateway as a whole.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
import uvloop
from sqlalchemy.exc import SQLAlchemyError

from certgate.certs.keyvault.service import service_key_vault
from certgate.certs.keyvault.vault import KeyVault
from certgate.config import status
from certgate.config.bootstrap import DataDir, initialise_data_dir
from certgate.config.datadir import DataDirLayout
from certgate.config.leases import KEY_VAULT_REFRESH, Lease
from certgate.config.store import Store, shown_url, store_url
from certgate.gateway.ports import AddressInUse, bind_exclusive
from certgate.gateway.stripping import request_header_rules
from certgate.gateway.workers import WorkerError, WorkerPool
from certgate.limits import SECONDS_MINIMUM, Limits, limits_from_args, minimum_problem
from certgate.management.gateways import register_node
from certgate.observe.accesslog import AccessLog
from certgate.observe.expiry import ExpiryWarnings
from certgate.observe.inventory import certificates_in_use
from certgate.observe.logs import configure_logging
from certgate.observe.metrics import enable_multiprocess
from certgate.policy import stores
from certgate.snapshot.compiler import SnapshotBuilder
from certgate.snapshot.follower import RevisionFollower

if TYPE_CHECKING:
    from certgate.management.keyvault_refresher import KeyVaultRefresher

log = logging.getLogger("certgate.serve")
MAX_NODE_CHARS = 256  # the store's worker_status.node column


class ServeError(Exception):
    """`certgate serve` cannot start; the message says why (printed without a traceback)."""


def serve(args: argparse.Namespace) -> None:
    configure_logging(args.log_level)
    try:
        code = _serve(args)
    except ServeError as error:
        print(f"certgate serve: {error}", file=sys.stderr)
        sys.exit(1)
    if code:
        sys.exit(code)


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ServeError(f"--workers must be at least 1, got {args.workers}")
    if not 0 < len(args.node) <= MAX_NODE_CHARS:
        raise ServeError(f"--node must be 1 to {MAX_NODE_CHARS} characters")
    for flag in (
        "heartbeat_interval",
        "revision_poll_interval",
        "worker_start_timeout",
        "lease_timeout",
        "revision_full_poll_interval",
        "expiry_check_interval",
    ):
        problem = minimum_problem(getattr(args, flag), SECONDS_MINIMUM)
        if problem is not None:
            raise ServeError(f"--{flag.replace('_', '-')} {problem}")
    limits = limits_from_args(args)
    try:
        request_header_rules(limits.strip_request_headers)  # refused here, not in each worker
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    _check_access_log(args.access_log)
    problem = stores.url_problem(limits.redis_url) if limits.redis_url else None
    if problem is not None:
        raise ServeError(f"--redis-url: {problem}")
    data_dir = _open_data_dir(args)
    pool = WorkerPool(
        args.workers,
        RevisionFollower(
            data_dir.root,
            args.node,
            args.heartbeat_interval,
            limits,
            store_url=data_dir.store.url,
            full_poll=args.revision_full_poll_interval,
        ),
        host=args.host,
        https_port=args.gateway_port,
        http_port=args.http_port,
        poll_interval=args.revision_poll_interval,
        limits=limits,
        access_log=args.access_log,
        log_level=args.log_level,
    )
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(data_dir.store.close)
        management = _bind_management(args)
        cleanup.callback(management.close)
        _reserve(pool, args)
        cleanup.callback(pool.stop, args.shutdown_timeout)
        # only once every port is ours: the rows of this node belong to this supervisor
        status.forget_node(data_dir.store.engine, args.node)
        register_node(data_dir.store, args.node)
        cleanup.callback(status.forget_node, data_dir.store.engine, args.node)
        metrics_dir = Path(tempfile.mkdtemp(prefix="certgate-metrics-"))
        cleanup.callback(shutil.rmtree, metrics_dir, True)
        enable_multiprocess(metrics_dir)  # before the workers: they inherit it
        _start(pool, args)
        _announce(args, data_dir.layout)
        return uvloop.run(_supervise(args, limits, data_dir, management, pool))


def _open_data_dir(args: argparse.Namespace) -> DataDir:
    """The data directory, with the store `--store` names (default: SQLite inside it) migrated."""
    url = None
    if args.store:
        try:
            url = store_url(args.store)
        except ValueError as error:
            raise ServeError(str(error)) from None
    try:
        return initialise_data_dir(args.data_dir.resolve(), database_url=url)
    except SQLAlchemyError as error:
        where = shown_url(url) if url else "the SQLite store"
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise ServeError(f"cannot open the store {where}: {reason}") from None


def _bind_management(args: argparse.Namespace) -> socket.socket:
    try:
        return bind_exclusive(args.host, args.management_port)
    except AddressInUse as error:
        raise ServeError(f"{error} (the management port, --management-port)") from None


def _check_access_log(target: str) -> None:
    """A file the workers cannot open is refused here, before anything starts."""
    try:
        log_file = AccessLog.open(target)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ServeError(f"--access-log {target}: {reason}") from None
    if log_file is not None:
        log_file.close()


def _reserve(pool: WorkerPool, args: argparse.Namespace) -> None:
    try:
        pool.reserve()
    except AddressInUse as error:
        role = "the gateway port, --gateway-port"
        if error.port == args.http_port:
            role = "the HTTP port, --http-port"
        raise ServeError(f"{error} ({role})") from None


def _start(pool: WorkerPool, args: argparse.Namespace) -> None:
    """Starts the workers from the main thread (their parent-death signal follows this thread)."""
    try:
        pool.start(args.worker_start_timeout)
    except (WorkerError, OSError) as error:
        raise ServeError(str(error)) from None


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


async def _supervise(
    args: argparse.Namespace,
    limits: Limits,
    data_dir: DataDir,
    sock: socket.socket,
    pool: WorkerPool,
) -> int:
    """Serves the management API until SIGINT/SIGTERM (0) or until a worker dies (1)."""
    from certgate.management.api_import import configure_api_import
    from certgate.management.app import create_management_app

    configure_api_import(args.api_import_allow_url, limits)
    store = data_dir.store
    vault = service_key_vault(
        token_file=args.vault_token_file,
        role_id_file=args.vault_role_id_file,
        secret_id_file=args.vault_secret_id_file,
    )
    refresher = _start_refresher(args, store, vault)
    dev_server_pem = data_dir.layout.dev_server.read_bytes()
    app = create_management_app(
        store,
        admin_token=data_dir.admin_token,
        limits=limits,
        compiler=SnapshotBuilder(store),
        key_vault=vault,
        node=args.node,
        dev_server_pem=dev_server_pem,
    )
    expiry = asyncio.create_task(
        _watch_expiry(
            store,
            dev_server_pem,
            data_dir.root / "expiry-warnings.json",
            args.expiry_check_interval,
        )
    )
    config = uvicorn.Config(
        app,
        ssl_certfile=str(data_dir.layout.dev_server),
        log_level="warning",
        loop="none",
        lifespan="off",
    )
    management = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    stop, died = asyncio.Event(), asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    for sentinel in pool.sentinels:
        loop.add_reader(sentinel, died.set)
    served = asyncio.create_task(management.serve(sockets=[sock]))
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(died.wait())]
    await asyncio.wait({served, *waits}, return_when=asyncio.FIRST_COMPLETED)
    for sentinel in pool.sentinels:
        loop.remove_reader(sentinel)
    for task in waits:
        task.cancel()
    if died.is_set() and not stop.is_set():
        codes = ", ".join(f"pid {pid}, exit code {code}" for pid, code in pool.exited().items())
        log.error("gateway worker exited (%s); stopping certgate serve", codes)
    management.should_exit = True
    expiry.cancel()
    await refresher.stop()
    await served
    return 1 if died.is_set() and not stop.is_set() else 0


async def _watch_expiry(store: Store, dev_server_pem: bytes, state: Path, interval: float) -> None:
    """Logs the 30/14/7-day expiry warnings of the certificates in use (certgate.observe.expiry)."""
    warnings = ExpiryWarnings(state)
    while True:
        try:
            uses = await asyncio.to_thread(certificates_in_use, store, dev_server_pem)
            warnings.check(uses, dt.datetime.now(dt.UTC))
        except Exception:
            log.exception("the certificate expiry check failed")
        await asyncio.sleep(interval)


def _start_refresher(args: argparse.Namespace, store: Store, vault: KeyVault) -> KeyVaultRefresher:
    """The key vault refresher on the running loop; while this node holds the lease it checks."""
    from certgate.management.keyvault import create_refresher

    refresher = create_refresher(
        store,
        vault,
        refresh_interval=args.key_vault_refresh_interval,
        lease=Lease(store.engine, KEY_VAULT_REFRESH, args.node, args.lease_timeout),
    )
    refresher.start()
    return refresher
