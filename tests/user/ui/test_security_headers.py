"""The dashboard's security headers (CSP with no inline script or style, framing,
sniffing, referrer, HSTS over https) on pages, fragments, redirects and error pages, and
a scan of every template and rendered page for inline script, style and event handlers."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser
from wrale.user.ui.web import TEMPLATES

API = "/api/v1"
PAGES = (
    "/",
    "/physical",
    "/devices",
    "/alerts",
    "/alerts/rules",
    "/policies",
    "/groups",
    "/enrollment",
    "/admin",
    "/admin/tokens",
    "/admin/audit",
)


def _directives(csp: str) -> dict[str, str]:
    out = {}
    for part in csp.split(";"):
        name, _, value = part.strip().partition(" ")
        out[name] = value.strip()
    return out


def assert_secure_headers(r: httpx.Response) -> None:
    h = r.headers
    csp = _directives(h.get("content-security-policy", ""))
    assert csp.get("script-src") == "'self'", h.get("content-security-policy")
    assert csp.get("style-src") == "'self'"
    assert csp.get("object-src") == "'none'"
    assert csp.get("base-uri") == "'self'"
    assert csp.get("frame-ancestors") == "'none'"
    assert csp.get("form-action") == "'self'"
    assert "unsafe-inline" not in h["content-security-policy"]
    assert "unsafe-eval" not in h["content-security-policy"]
    assert h.get("x-frame-options") == "DENY"
    assert h.get("x-content-type-options") == "nosniff"
    assert h.get("referrer-policy") == "same-origin"


class InlineCode(HTMLParser):
    """Collects what a strict CSP would refuse: inline scripts, script URLs, on*
    handlers, style attributes and <style> elements, htmx's eval-ing attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k.lower(): v or "" for k, v in attrs}
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in names.items():
            if name.startswith(("on", "hx-on", "data-hx-on")):
                self.found.append(f"<{tag} {name}=…>")
            if name == "style":
                self.found.append(f"<{tag} style=…>")
            if re.match(r"\s*javascript:", value, re.IGNORECASE):
                self.found.append(f"<{tag} {name}=javascript:…>")
            if name in ("hx-vals", "hx-headers", "hx-vars") and value.strip().startswith("js:"):
                self.found.append(f"<{tag} {name}=js:…>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"inline script text {data.strip()[:40]!r}")


def inline_code(html: str) -> list[str]:
    p = InlineCode()
    p.feed(html)
    p.close()
    return p.found


def test_no_template_has_inline_script_style_or_event_handlers() -> None:
    problems = []
    templates = sorted(TEMPLATES.rglob("*.html")) + sorted(TEMPLATES.rglob("*.svg"))
    assert len(templates) > 20
    for path in templates:
        text = path.read_text(encoding="utf-8")
        # Jinja tags can hide attributes from the parser: look at the raw text too
        raw = re.findall(r"""\s(on[a-z]+|hx-on[:\w-]*|style)\s*=\s*["'{]""", text)
        raw += re.findall(r"<style\b|<script(?![^>]*\bsrc=)[^>]*>", text)
        found = inline_code(re.sub(r"{%.*?%}|{#.*?#}", "", text, flags=re.DOTALL)) + raw
        problems += [f"{path.relative_to(TEMPLATES)}: {f}" for f in found]
    assert not problems, "\n".join(problems)


def test_the_scanner_finds_what_a_strict_csp_refuses() -> None:
    assert inline_code("<script>alert(1)</script>")
    assert inline_code('<button onclick="go()">x</button>')
    assert inline_code('<div hx-on:click="go()"></div>')
    assert inline_code('<span style="width: 5%"></span>')
    assert inline_code('<a href="javascript:go()">x</a>')
    assert inline_code("<style>p{}</style>")
    assert not inline_code('<script src="/static/wrale.js" defer></script><p class="x">ok</p>')


async def test_every_page_carries_the_headers_and_no_inline_code(
    central: Central, admin_ui: Browser
) -> None:
    r = await central.http.post(
        f"{API}/devices", json={"name": "pi-csp", "model": "Raspberry Pi 5"}, headers=central.admin
    )
    assert r.status_code == 201, r.text
    device_id = r.json()["id"]
    for path in (*PAGES, f"/devices/{device_id}", "/policies/new"):
        r = await admin_ui.page(path)
        assert r.status_code == 200, (path, r.status_code)
        assert_secure_headers(r)
        assert not inline_code(r.text), (path, inline_code(r.text))
        assert "strict-transport-security" not in r.headers  # plain http here


async def test_fragments_redirects_errors_static_files_and_login_carry_them_too(
    central: Central, admin_ui: Browser
) -> None:
    cases = [
        await admin_ui.page("/no-such-page"),  # 404 page
        await admin_ui.page("/devices/" + "f" * 32),  # 404 of a device
        await admin_ui.fragment("/"),  # an htmx fragment
        await admin_ui.http.post("/logout", data={}),  # 403: no CSRF token
        await admin_ui.page("/static/wrale.js"),
    ]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=central.app), base_url="http://central"
    ) as stranger:
        cases.append(await stranger.get("/"))  # 303 to the login page
        cases.append(await stranger.get("/login"))
    assert {r.status_code for r in cases} >= {200, 303, 403, 404}
    for r in cases:
        assert_secure_headers(r)
        if r.headers.get("content-type", "").startswith("text/html"):
            assert not inline_code(r.text), (r.url, inline_code(r.text))


async def test_hsts_only_over_https_and_the_api_keeps_its_own_headers(central: Central) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=central.app), base_url="https://central"
    ) as tls:
        r = await tls.get("/login")
        assert_secure_headers(r)
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        docs = await tls.get("/docs")  # Swagger UI needs its inline script
        assert "content-security-policy" not in docs.headers


@pytest.mark.parametrize("path", ["/static/vendor/htmx.min.js", "/static/device.js"])
async def test_scripts_the_pages_load_exist(admin_ui: Browser, path: str) -> None:
    r = await admin_ui.page(path)
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
