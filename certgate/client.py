"""A small synchronous client of the management API, used by the CLI."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "https://127.0.0.1:9443"


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
            verify=verify,
            timeout=30,
        )

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
        return response.json() if response.content else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
