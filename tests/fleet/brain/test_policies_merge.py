"""The pure parts of policies: per-field document checks and the inheritance merge."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.brain.services.policies import (
    check_document,
    check_merged,
    defaults,
    merge,
)
from wrale.shared.errors import InvalidRequestError

FLEET = {"scope_type": "fleet", "scope_id": None, "policy_id": "p1", "version": 1}
GROUP = {"scope_type": "group", "scope_id": "g1", "policy_id": "p2", "version": 3}
DEVICE = {"scope_type": "device", "scope_id": "d1", "policy_id": "p3", "version": 2}


def test_nearest_wins_and_sources_are_kept() -> None:
    fields = merge(
        "thermal",
        [
            (FLEET, {"cpu_warning_c": 65.0, "profile": "quiet"}),
            (GROUP, {"cpu_warning_c": 68.0}),
            (DEVICE, {"cpu_critical_c": 82.0}),
        ],
    )
    assert fields["cpu_warning_c"] == {"value": 68.0, "source": GROUP}
    assert fields["profile"] == {"value": "quiet", "source": FLEET}
    assert fields["cpu_critical_c"] == {"value": 82.0, "source": DEVICE}
    assert fields["hysteresis_c"] == {"value": 5.0, "source": None}  # the default
    assert check_merged("thermal", fields) == []


def test_cross_field_rules_are_checked_on_the_merged_document() -> None:
    fields = merge("thermal", [(FLEET, {"cpu_warning_c": 90.0})])
    assert any("cpu_warning_c < cpu_critical_c" in e for e in check_merged("thermal", fields))


def test_partial_documents_are_checked_field_by_field() -> None:
    assert check_document("power", {"low_battery_pct": 30}) == {"low_battery_pct": 30.0}
    assert check_document("security", {"level": "high"}) == {"level": "high"}
    assert check_document("sampling", {"interval_s": 5}) == {"interval_s": 5.0}
    for kind, doc, message in (
        ("thermal", {"cpu_warning_c": 500}, "document.cpu_warning_c"),
        ("thermal", {"fan_floor": 10}, "not a thermal policy field"),
        ("power", {"low_battery_pct": -1}, "document.low_battery_pct"),
        ("security", {"level": "paranoid"}, "document.level"),
        ("sampling", {"interval_s": 0}, "document.interval_s"),
        ("thermal", {"curve": [{"temp_c": 50, "pwm": 300}]}, "document.curve"),
        ("weather", {}, "kind"),
    ):
        with pytest.raises(InvalidRequestError, match=message):
            check_document(kind, doc)


docs = st.dictionaries(
    st.sampled_from(["low_battery_pct", "critical_battery_pct", "window_s"]),
    st.floats(min_value=5, max_value=100),
    max_size=3,
)


@given(st.lists(docs, max_size=5))
def test_merge_takes_the_last_layer_that_sets_each_field(layers: list[dict[str, float]]) -> None:
    sources = [
        {"scope_type": "group", "scope_id": str(i), "policy_id": str(i), "version": 1}
        for i in range(len(layers))
    ]
    fields = merge("power", list(zip(sources, layers, strict=True)))
    for name, entry in fields.items():
        setters = [i for i, doc in enumerate(layers) if name in doc]
        if setters:
            assert entry == {"value": layers[setters[-1]][name], "source": sources[setters[-1]]}
        else:
            assert entry == {"value": defaults("power")[name], "source": None}
