"""Sign-in, the session cookie, CSRF, CSP and the session limits, in Debian's Chromium."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from html.parser import HTMLParser
from importlib import resources

import httpx
import pytest
from playwright.sync_api import expect

from certgate.limits import Limits
from certgate.ui.routes import COOKIE
from tests.management.server import management_server
from tests.ui.browser import fetch, sign_in


def test_sign_in_sets_a_strict_secure_httponly_cookie_and_sign_out_ends_it(page, server):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{server.base_url}/ui/")
    page.get_by_label("Admin token", exact=True).fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("The admin token was not accepted.")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("#app")).to_be_hidden()
    assert page.context.cookies() == []

    sign_in(page, server.base_url, server.token)
    (cookie,) = page.context.cookies()
    assert cookie["name"] == COOKIE == "__Host-certgate-ui"
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert server.token not in cookie["value"]
    assert not [url for url in requests if server.token in url or "wrong-token" in url]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    assert page.context.cookies() == []
    with httpx.Client(verify=server.ssl_context()) as client:
        replayed = client.get(
            f"{server.base_url}/ui/session", headers={"Cookie": f"{COOKIE}={cookie['value']}"}
        )
    assert replayed.status_code == 401


def test_a_change_without_the_csrf_token_is_refused(admin, server):
    csrf = admin.evaluate("state.csrf")
    assert csrf
    body = {"properties": {"data": "AAAA"}}
    status, refused = fetch(admin, "PUT", "/ui/api/certificates/x1", body)
    assert status == 403
    assert refused["error"]["code"] == "CsrfTokenInvalid"
    wrong = {"X-CSRF-Token": csrf[:-2] + "xx"}
    assert fetch(admin, "DELETE", "/ui/api/apis/a1", None, wrong)[0] == 403
    assert fetch(admin, "POST", "/ui/signout")[0] == 403
    assert server.store.get("certificates/x1") is None
    # the same request with the token reaches the REST API's validation
    status, checked = fetch(admin, "PUT", "/ui/api/certificates/x1", body, {"X-CSRF-Token": csrf})
    assert status == 400
    assert checked["error"]["code"] == "ValidationError"


def test_the_api_proxy_needs_a_session_and_never_accepts_the_bearer_token_alone(server):
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as client:
        for method, path in (("GET", "/ui/api/certificates"), ("GET", "/ui/usage")):
            answer = client.request(method, path, headers=server.headers)
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "SignInRequired"
        answer = client.get(f"/ui/signin?token={server.token}")
        assert answer.status_code == 405  # the token is taken from a POST body only


class _InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        self.problems += [f"{tag} {name}" for name in names if name.startswith("on")]
        if "style" in names:
            self.problems.append(f"{tag} style attribute")


def test_content_security_policy_forbids_inline_script_and_the_page_has_none(page, server):
    response = page.goto(f"{server.base_url}/ui/")
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    static = resources.files("certgate.ui") / "static"
    parser = _InlineScripts()
    parser.feed((static / "index.html").read_text())
    assert parser.problems == []
    script = (static / "app.js").read_text()
    assert not re.search(r"\b(eval|Function)\(|innerHTML|outerHTML|insertAdjacentHTML", script)
    # an inline script injected into the live page is blocked by the policy
    blocked = page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener(
                "securitypolicyviolation", (e) => resolve(e.violatedDirective));
            const s = document.createElement("script");
            s.textContent = "window.injected = 1";
            document.body.append(s);
        })"""
    )
    assert blocked.startswith("script-src")
    assert page.evaluate("window.injected") is None
    page.problems.clear()  # the violation report above is the expected console error


def test_assets_are_served_from_the_package_only(page, server):
    external: list[str] = []
    page.on(
        "request",
        lambda r: external.append(r.url) if not r.url.startswith(server.base_url) else None,
    )
    sign_in(page, server.base_url, server.token)
    for name in ("Status", "APIs", "Backends"):
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.locator("#app")).to_have_attribute("aria-busy", "false")
    assert external == []
    assert fetch(page, "GET", "/ui/static/..%2Fsessions.py")[0] == 404


@pytest.mark.parametrize("width", [1280, 390])
def test_pages_fit_the_window(browser, server, width):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, server.base_url, server.token)
        for name in ("Certificates", "CA certificates", "Custom domains", "APIs", "Status"):
            page.get_by_role("link", name=name, exact=True).click()
            expect(page.locator("#app")).to_have_attribute("aria-busy", "false")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} is wider than a {width}px window"
    finally:
        context.close()


def test_signing_in_beyond_ui_max_sessions_ends_the_oldest(browser, tmp_path, authority):
    limits = Limits(ui_max_sessions=1)
    with management_server(tmp_path / "data", authority=authority, limits=limits) as server:
        first, second = browser.new_context(), browser.new_context()
        try:
            one, two = first.new_page(), second.new_page()
            sign_in(one, server.base_url, server.token)
            sign_in(two, server.base_url, server.token)
            assert fetch(one, "GET", "/ui/session")[0] == 401
            assert fetch(two, "GET", "/ui/session")[0] == 200
        finally:
            first.close()
            second.close()


@pytest.fixture
def attacker_site(tmp_path):
    """A page on http://127.0.0.1 (another site than https://localhost) with forms to submit."""
    folder = tmp_path / "attacker"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as site:
        thread = threading.Thread(target=site.serve_forever, daemon=True)
        thread.start()
        yield folder, f"http://127.0.0.1:{site.server_address[1]}"
        site.shutdown()
        thread.join(timeout=10)


def test_a_cross_site_form_cannot_change_anything(admin, server, attacker_site):
    folder, origin = attacker_site
    (folder / "index.html").write_text(
        f'<form method="post" action="{server.base_url}/ui/api/apis/evil">'
        '<input name="properties" value="x"><button id="go">go</button></form>'
        f'<form method="post" action="{server.base_url}/ui/signout">'
        '<button id="out">out</button></form>'
    )
    for button in ("#go", "#out"):
        admin.goto(f"{origin}/index.html")
        with admin.expect_navigation() as navigation:
            admin.locator(button).click()
        # SameSite=Strict: the session cookie does not travel with a cross-site POST
        assert navigation.value.status == 401
    assert server.store.get("apis/evil") is None
    admin.goto(f"{server.base_url}/ui/")
    expect(admin.get_by_role("button", name="Sign out")).to_be_visible()


def test_a_sign_in_body_over_the_management_body_limit_is_refused(tmp_path, authority):
    limits = Limits(management_max_body_bytes=1024)
    with management_server(tmp_path / "data", authority=authority, limits=limits) as server:
        with httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as client:
            padded = client.post("/ui/signin", data={"token": server.token, "pad": "x" * 1024})
            plain = client.post("/ui/signin", data={"token": server.token})
        assert padded.status_code == 303 and padded.headers["location"] == "/ui/?signin=failed"
        assert COOKIE not in padded.cookies
        assert plain.status_code == 303 and plain.headers["location"] == "/ui/"
        assert COOKIE in plain.cookies


def test_the_bare_ui_path_redirects_to_the_page(server):
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as client:
        answer = client.get("/ui")
    assert answer.status_code == 308 and answer.headers["location"] == "/ui/"


def test_the_api_proxy_does_not_forward_to_the_ui_itself(admin):
    for path in ("/ui/api/ui/api/certificates", "/ui/api/UI/session"):
        status, body = fetch(admin, "GET", path)
        assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    status, body = fetch(admin, "GET", "/ui/api/certificates")
    assert status == 200 and body["value"] == []
