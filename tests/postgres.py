"""A private PostgreSQL cluster for the tests: `initdb` + `pg_ctl` in a temporary directory.

Debian's `postgresql` package provides the binaries (`scripts/test` installs it). PostgreSQL refuses
to run as root, so when the tests run as root the cluster belongs to the `postgres` user and every
server command runs through `runuser`. It listens on 127.0.0.1 on a free port (and a socket in its
own directory), trusts local connections, and is removed when the session ends.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

DRIVER = "postgresql+psycopg"


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not versions:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: apt-get install postgresql (scripts/test does)"
        )
    return str(versions[-1])


class PostgresCluster:
    """One running cluster; `database()` hands out a fresh, empty database per caller."""

    def __init__(self) -> None:
        self._names = itertools.count()
        self.root = Path(tempfile.mkdtemp(prefix="certgate-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(_binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        options += " -c max_connections=300"
        self._run(
            _binary("pg_ctl"),
            *("-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start"),
        )

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", self._user, "--"] if self._user else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"{DRIVER}://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Creates an empty database; returns its SQLAlchemy URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
