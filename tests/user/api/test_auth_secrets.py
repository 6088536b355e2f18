"""Secrets out of logs and one rule for reading the audit log: ``?token=`` never reaches
the access log, and the audit log is readable by the same role in the API and dashboard."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import ADMIN_PASSWORD, Central
from tests.user.ui.conftest import sign_in


def test_the_access_log_never_shows_a_token(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wrale.shared.redact import redact_access_logs

    redact_access_logs()
    caplog.set_level(logging.INFO)
    # whatever an earlier test in this process did to logging (uvicorn's LOGGING_CONFIG stops
    # its loggers propagating; a dictConfig may disable them), caplog hears these two
    # (and `wrale demo`/`wrale sim` raise theirs to ERROR): caplog restores each level after
    for name in ("uvicorn.access", "uvicorn.error"):
        caplog.set_level(logging.INFO, logger=name)
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "propagate", False)
        monkeypatch.setattr(logger, "handlers", [caplog.handler])
    access, server = logging.getLogger("uvicorn.access"), logging.getLogger("uvicorn.error")
    # the very calls uvicorn makes for an HTTP request and for a WebSocket handshake
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "10.0.0.5:5000",
        "GET",
        "/api/v1/ws?token=eyJsecret.part&topics=alerts",
        "1.1",
        101,
    )
    server.info('%s - "WebSocket %s" [accepted]', "10.0.0.5:5000", "/api/v1/ws?a=1&token=wrl_XYZ")
    server.info("GET /x?access_token=abc%2Fdef&refresh_token=r1 done")
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("eyJsecret", "wrl_XYZ", "abc%2Fdef", "r1 "):
        assert secret not in text
    assert "token=[redacted]&topics=alerts" in text
    assert "a=1&token=[redacted]" in text


async def test_the_audit_log_needs_the_same_role_in_the_api_and_the_dashboard(
    central: Central,
) -> None:
    for role in ("viewer", "operator", "admin"):
        if role == "admin":
            name, password, headers = "admin", ADMIN_PASSWORD, central.admin
        else:
            name, password = f"reader-{role}", "password-123"
            headers = await central.user(role, name)
        api = await central.http.get("/api/v1/audit", headers=headers)
        browser = await sign_in(central, name, password)
        page = await browser.http.get("/admin/audit")
        await browser.http.aclose()
        assert (api.status_code == 200) == (page.status_code == 200), (role, api, page)
        assert api.status_code == (200 if role == "admin" else 403), role
