"""A small synchronous client of the management API, used by the CLI."""

from __future__ import annotations

import argparse
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "https://127.0.0.1:9443"
REVISION_HEADER = "x-certgate-revision"
WAIT_POLL_SECONDS = 0.1


class ManagementError(Exception):
    """An ARM error response, reduced to `Code: message` plus the details' targets."""

    @classmethod
    def from_response(cls, response: httpx.Response) -> ManagementError:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            return cls(f"HTTP {response.status_code}")
        message = error.get("message")
        details = "; ".join(
            f"{d.get('target') or d.get('code')}: {d.get('message')}"
            for d in error.get("details") or []
            if d.get("message") != message
        )
        text = f"{error.get('code')}: {message}"
        return cls(f"{text} ({details})" if details else text)


class ManagementClient:
    def __init__(self, url: str, token: str, verify: str | bool) -> None:
        self.url = url
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify,
            timeout=30,
        )
        self.last_revision: int | None = None
        """The store revision of the last write (`X-Certgate-Revision`), None before any."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ManagementClient:
        """Flags first, then the environment, then the files `certgate serve` wrote."""
        from certgate.config.datadir import DataDirLayout

        layout = DataDirLayout(args.data_dir)
        url = args.management_url or os.environ.get("CERTGATE_URL") or DEFAULT_URL
        token = args.token or os.environ.get("CERTGATE_ADMIN_TOKEN") or _read(layout.admin_token)
        if not token:
            raise ManagementError(
                f"no admin token: pass --token, set CERTGATE_ADMIN_TOKEN or run from the "
                f"directory holding {layout.admin_token}"
            )
        cacert = args.cacert or (layout.dev_ca if layout.dev_ca.exists() else None)
        return cls(url, token, str(cacert) if cacert else True)

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def get(self, path: str, params: dict | None = None) -> dict:
        return self._send("GET", path, params=params)

    def list(self, path: str) -> list[dict]:
        items: list[dict] = []
        page: dict = self._send("GET", path)
        while True:
            items += page.get("value", [])
            if not page.get("nextLink"):
                return items
            page = self._send("GET", page["nextLink"])

    def put(self, path: str, body: dict) -> dict:
        return self._send("PUT", path, json=body)

    def patch(self, path: str, body: dict) -> dict:
        return self._send("PATCH", path, json=body)

    def post(self, path: str, body: dict | None = None) -> dict:
        return self._send("POST", path, json=body)

    def delete(self, path: str) -> None:
        self._send("DELETE", path, headers={"If-Match": "*"})

    def status(self) -> dict:
        """`GET /status`: the store revision and every gateway worker's."""
        return self._send("GET", "status")

    def wait_for_revision(self, revision: int, timeout: float) -> None:
        """Returns once every live gateway worker serves `revision` or later; raises
        ManagementError when one reports that it failed to compile it, or after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            progress = RevisionProgress.of(self.status(), revision)
            if progress.failed:
                raise ManagementError(
                    f"revision {revision} is stored but not served: " + "; ".join(progress.failed)
                )
            if not progress.pending:
                return
            if time.monotonic() >= deadline:
                raise ManagementError(
                    f"revision {revision} is stored, but after {timeout:g} s these gateway "
                    f"workers do not serve it yet: {', '.join(progress.pending)}"
                )
            time.sleep(WAIT_POLL_SECONDS)  # the poll interval of a condition with a deadline

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise ManagementError(
                f"cannot reach the management API at {self.url}: {reason}"
            ) from None
        if response.status_code >= 400:
            raise ManagementError.from_response(response)
        if REVISION_HEADER in response.headers:
            self.last_revision = int(response.headers[REVISION_HEADER])
        return response.json() if response.content else None


@dataclass
class RevisionProgress:
    """How far the live gateway workers of a `/status` document are towards one revision."""

    pending: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, document: dict, revision: int) -> RevisionProgress:
        progress = cls()
        for worker in document["properties"]["workers"]:
            if not worker["live"] or worker["revision"] >= revision:
                continue
            name = f"{worker['node']}/{worker['worker']}"
            error = worker.get("lastError")
            if error and error["revision"] >= revision:
                progress.failed.append(
                    f"worker {name} could not compile revision {error['revision']} "
                    f"(it serves {worker['revision']}): {error['message']}"
                )
            else:
                progress.pending.append(f"{name} (serves {worker['revision']})")
        return progress


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
