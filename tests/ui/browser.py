"""Debian's Chromium driven by Playwright, trusting one test CA, for the admin UI tests.

Playwright's own browser download is not available here: the browser is `/usr/bin/chromium`
(`scripts/test` installs it). The CA is trusted the way Chromium on Linux trusts any CA: an NSS
database in `$HOME/.pki/nssdb` (made with `certutil`), with HOME pointing at a temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def trusting_home(home: Path, ca_pem: Path) -> Path:
    """`home` with an NSS database that trusts `ca_pem` for TLS servers."""
    if not os.access(CHROMIUM, os.X_OK) or shutil.which("certutil") is None:
        raise RuntimeError(
            "the admin UI tests need Debian's chromium and libnss3-tools: run scripts/test, or "
            "apt-get install chromium libnss3-tools"
        )
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True, exist_ok=True)
    where = f"sql:{database}"
    subprocess.run(["certutil", "-N", "-d", where, "--empty-password"], check=True)
    subprocess.run(
        ["certutil", "-A", "-d", where, "-n", "certgate test CA", "-t", "C,,", "-i", str(ca_pem)],
        check=True,
    )
    return home


@contextmanager
def chromium(home: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=ARGS,
            env={**os.environ, "HOME": str(home)},
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/ui/")
    page.get_by_label("Admin token", exact=True).fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator("#app")).to_have_attribute("aria-busy", "false")


def fetch(page: Page, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    """`fetch()` inside the page: the browser's own cookies and TLS trust, no UI code involved."""
    return page.evaluate(
        """async ([method, path, body, headers]) => {
            const init = {method, headers: headers || {}, credentials: "same-origin"};
            if (body !== null) {
                init.body = JSON.stringify(body);
                init.headers["Content-Type"] = "application/json";
            }
            const response = await fetch(path, init);
            const text = await response.text();
            return [response.status, text ? JSON.parse(text) : {}];
        }""",
        [method, path, body, headers],
    )


def row(page: Page, text: str):
    """The table row holding `text`."""
    return page.locator("tbody tr").filter(has_text=re.compile(re.escape(text)))
