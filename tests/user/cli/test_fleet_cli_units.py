"""Pure pieces of the central CLI: durations, key=value parsing, names, error bodies."""

from __future__ import annotations

import httpx
import pytest
import typer

from wrale.user.cli.client import error_of
from wrale.user.cli.fleet_common import Styled, key_values, parse_duration, safe
from wrale.user.cli.fleet_enroll import device_names


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("5m", 300), ("1h", 3600), ("7d", 604_800), ("2w", 1_209_600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5 minutes", "-1h", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration(text)


def test_key_values() -> None:
    assert key_values(["profile=cool", "cpu_warning_c=65", "armed=true", "x=[1,2]"]) == {
        "profile": "cool",
        "cpu_warning_c": 65,
        "armed": True,
        "x": [1, 2],
    }
    with pytest.raises(typer.BadParameter):
        key_values(["novalue"])


def test_device_names_are_padded_to_the_widest() -> None:
    assert device_names("r-", 1, 3) == ["r-01", "r-02", "r-03"]
    assert device_names("r-", 99, 2) == ["r-099", "r-100"]


def test_server_values_are_escaped_but_styled_cells_are_not() -> None:
    assert safe("[bold]x") == "\\[bold]x"
    assert safe(["[a]", 1]) == ["\\[a]", 1]
    assert safe(Styled("[red]x[/]")) == "[red]x[/]"


def test_error_bodies() -> None:
    body = {"error": {"code": "conflict", "message": "slot taken", "details": {"slot_u": 3}}}
    err = error_of(httpx.Response(409, json=body))
    assert (err.status, err.code, err.message, err.details) == (409, "conflict", "slot taken",
                                                                 {"slot_u": 3})  # fmt: skip
    err = error_of(httpx.Response(502, text="Bad gateway from the proxy"))
    assert err.status == 502
    assert "Bad gateway" in err.message
