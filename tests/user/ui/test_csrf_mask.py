"""The CSRF token as pages show it: masked with a fresh random pad in every response
(BREACH cannot recover a secret that is never the same twice), accepted once unmasked,
and refused when forged, replayed from another session or sent unmasked."""

from __future__ import annotations

import base64
import re
import secrets

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.user.ui.conftest import Browser, SignIn
from wrale.user.ui.web import CSRF_COOKIE, csrf_matches, mask_csrf, new_csrf, unmask_csrf

FORM_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')
HX_TOKEN = re.compile(r'"X-CSRF-Token": "([^"]+)"')


def test_a_masked_token_unmasks_to_the_token_and_is_new_each_time() -> None:
    token = new_csrf()
    a, b = mask_csrf(token), mask_csrf(token)
    assert a != b
    assert token not in a
    assert token not in b
    assert unmask_csrf(a) == unmask_csrf(b) == token.encode()
    assert csrf_matches(a, token)
    assert not csrf_matches(token, token)  # the raw secret is never what a page sends
    assert not csrf_matches(mask_csrf(new_csrf()), token)
    assert not csrf_matches(a, "")
    assert not csrf_matches(None, token)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=120).map(lambda b: b.hex())))
def test_unmasking_any_string_never_raises(sent: str) -> None:
    token = new_csrf()
    assert csrf_matches(sent, token) in (True, False)
    unmask_csrf(sent)
    unmask_csrf(base64.urlsafe_b64encode(sent.encode()).decode())


async def test_two_responses_carry_different_tokens_and_both_are_accepted(
    admin_ui: Browser,
) -> None:
    first = (await admin_ui.page("/enrollment")).text
    t1 = admin_ui.csrf
    second = (await admin_ui.page("/enrollment")).text
    t2 = admin_ui.csrf
    assert t1 != t2
    secret = admin_ui.http.cookies[CSRF_COOKIE]
    assert secret not in first
    assert secret not in second
    # within one response every place shows that response's token
    assert set(FORM_TOKEN.findall(second)) | set(HX_TOKEN.findall(second)) == {t2}
    for token in (t1, t2):
        r = await admin_ui.http.post(
            "/enrollment/tokens",
            data={"max_uses": "x"},  # invalid on purpose: past the CSRF check, nothing saved
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert r.status_code == 422, r.text
        r = await admin_ui.http.post("/enrollment/tokens", data={"csrf": token, "max_uses": "x"})
        assert r.status_code == 422, r.text


async def test_forged_raw_and_foreign_tokens_are_refused(admin_ui: Browser, ui_as: SignIn) -> None:
    other = await ui_as("admin")
    await admin_ui.page("/enrollment")
    raw = admin_ui.http.cookies[CSRF_COOKIE]
    forged = base64.urlsafe_b64encode(secrets.token_bytes(64)).decode()
    for token in (forged, raw, other.csrf, "", "%%%", "A" * 10_000):
        r = await admin_ui.http.post(
            "/enrollment/tokens",
            data={"max_uses": "1"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert r.status_code == 403, (token[:20], r.status_code)


async def test_the_login_form_is_masked_too(admin_ui: Browser, ui_as: SignIn) -> None:
    r = await admin_ui.http.get("/login")
    tokens = FORM_TOKEN.findall(r.text)
    assert tokens
    assert all(t != admin_ui.http.cookies[CSRF_COOKIE] for t in tokens)
    assert unmask_csrf(tokens[0]) == admin_ui.http.cookies[CSRF_COOKIE].encode()
