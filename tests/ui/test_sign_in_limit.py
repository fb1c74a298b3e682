"""The admin UI sign-in shares the management API's budget of wrong admin tokens per address
(a real HTTPS management server on 127.0.0.1, no browser)."""

from __future__ import annotations

from pathlib import Path

import httpx

from certgate.limits import Limits
from certgate.ui.routes import COOKIE
from tests.keyvault.bao import wait_until
from tests.management.server import management_server


def test_wrong_sign_ins_past_the_limit_get_429_and_a_signed_in_session_carries_on(tmp_path: Path):
    limits = Limits(admin_auth_failures=3, admin_auth_window=60.0)
    with (
        management_server(tmp_path / "data", limits=limits) as server,
        httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as browser,
        httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as guesser,
    ):
        signed_in = browser.post("/ui/signin", data={"token": server.token})
        assert signed_in.status_code == 303 and COOKIE in signed_in.cookies
        for _ in range(3):
            answer = guesser.post("/ui/signin", data={"token": "wrong-guess"})
            assert answer.status_code == 303
            assert answer.headers["location"] == "/ui/?signin=failed"

        refused = guesser.post("/ui/signin", data={"token": server.token})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "TooManyFailedAuthentications"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["X-Frame-Options"] == "DENY"  # the UI's headers
        assert COOKIE not in refused.cookies
        assert guesser.get("/apis", headers=server.headers).status_code == 429  # one budget

        assert browser.get("/ui/api/apis").status_code == 200  # same address, signed in before


def test_the_ui_sign_in_works_again_once_the_window_has_passed(tmp_path: Path):
    limits = Limits(admin_auth_failures=2, admin_auth_window=2.0)
    with (
        management_server(tmp_path / "data", limits=limits) as server,
        httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as client,
    ):
        for _ in range(2):
            client.post("/ui/signin", data={"token": "wrong-guess"})
        assert client.post("/ui/signin", data={"token": server.token}).status_code == 429

        def sign_in() -> httpx.Response | None:
            answer = client.post("/ui/signin", data={"token": server.token})
            return answer if answer.status_code == 303 else None

        signed_in = wait_until(sign_in, timeout=10, interval=0.1)
        assert signed_in.headers["location"] == "/ui/" and COOKIE in signed_in.cookies
