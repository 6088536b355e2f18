"""plan(current, desired): pure, converges, safest steps first, refuses malformed values."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.edge.reconcile import (
    Arm,
    ClearFan,
    Disarm,
    GpioPwm,
    GpioWrite,
    Reject,
    SetConfig,
    SetFanOverride,
    SetPolicy,
    SetSampling,
    Step,
    plan,
)
from wrale.fleet.sync.twin import merge
from wrale.shared.policy import PowerPolicy, SecurityPolicy, ThermalPolicy
from wrale.shared.structs import to_builtins

CURRENT: dict[str, Any] = {
    "thermal": to_builtins(ThermalPolicy()),
    "power": to_builtins(PowerPolicy()),
    "security": to_builtins(SecurityPolicy()),
    "sampling": {"interval_s": 1.0, "report_interval_s": 10.0},
    "fan": {"override_pct": None, "duration_s": 300.0},
    "tamper": {"armed": True, "level": "medium", "lockdown": False},
    "gpio": {"led": {"value": 0}, "fan_pwm": {"frequency_hz": 25000.0, "duty_percent": 0.0}},
    "config": {},
}


def run(current: dict[str, Any], steps: list[Step]) -> dict[str, Any]:
    """What a board that accepts every step would report afterwards (pure)."""
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in current.items()}
    for s in steps:
        match s:
            case SetPolicy(kind=kind, document=document):
                doc[kind] = document
            case SetSampling(interval_s=i, report_interval_s=r):
                doc["sampling"] = {"interval_s": i, "report_interval_s": r}
            case SetConfig(config=config):
                doc["config"] = config
            case Arm(level=level):
                doc["tamper"] = {**doc["tamper"], "armed": True} | (
                    {"level": level} if level else {}
                )
            case Disarm():
                doc["tamper"] = {**doc["tamper"], "armed": False, "lockdown": False}
            case SetFanOverride(percent=p, duration_s=d):
                doc["fan"] = {"override_pct": p, "duration_s": d}
            case ClearFan():
                doc["fan"] = {**doc["fan"], "override_pct": None}
            case GpioWrite(line=line, value=v):
                doc["gpio"] = {**doc["gpio"], line: {"value": v}}
            case GpioPwm(line=line, frequency_hz=f, duty_percent=d):
                doc["gpio"] = {**doc["gpio"], line: {"frequency_hz": f, "duty_percent": d}}
            case Reject():
                pass
    return doc


pct = st.floats(min_value=0, max_value=100, allow_nan=False)
desired_docs = st.fixed_dictionaries(
    {},
    optional={
        "thermal": st.fixed_dictionaries(
            {},
            optional={
                "min_fan_pct": pct,
                "cpu_warning_c": st.floats(50, 69),
                "profile": st.sampled_from(["quiet", "balance", "cool", "max"]),
            },
        ),
        "power": st.fixed_dictionaries({}, optional={"low_battery_pct": st.floats(15, 50)}),
        "security": st.fixed_dictionaries({}, optional={"debounce_s": st.floats(0, 5)}),
        "sampling": st.fixed_dictionaries(
            {"interval_s": st.floats(0.1, 10), "report_interval_s": st.floats(10, 60)}
        ),
        "fan": st.fixed_dictionaries(
            {"override_pct": st.one_of(st.none(), pct), "duration_s": st.floats(1, 3600)}
        ),
        "tamper": st.fixed_dictionaries(
            {},
            optional={
                "armed": st.booleans(),
                "level": st.sampled_from(["low", "medium", "high"]),
            },
        ),
        "gpio": st.dictionaries(
            st.sampled_from(["led", "fan_pwm", "relay"]),
            st.one_of(
                st.fixed_dictionaries({"value": st.integers(0, 1)}),
                st.fixed_dictionaries({"frequency_hz": st.floats(1, 1e5), "duty_percent": pct}),
            ),
            max_size=3,
        ),
        "config": st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=3),
    },
)


@given(desired_docs)
def test_a_board_that_does_every_step_needs_no_more(desired: dict[str, Any]) -> None:
    steps = plan(CURRENT, desired)
    assert not any(isinstance(s, Reject) for s in steps)
    assert plan(run(CURRENT, steps), desired) == []


@given(desired_docs)
def test_plan_is_pure_and_policies_come_first(desired: dict[str, Any]) -> None:
    before = repr(CURRENT), repr(desired)
    steps = plan(CURRENT, desired)
    assert (repr(CURRENT), repr(desired)) == before
    kinds = [type(s).__name__ for s in steps]
    policies = [i for i, k in enumerate(kinds) if k == "SetPolicy"]
    assert policies == list(range(len(policies)))
    order = [s.kind for s in steps if isinstance(s, SetPolicy)]
    assert order == sorted(order, key=["thermal", "power", "security"].index)


def test_nothing_to_do_when_the_board_runs_what_is_desired() -> None:
    desired = {k: v for k, v in CURRENT.items() if k != "tamper"}
    assert plan(CURRENT, desired) == []
    assert plan(CURRENT, {}) == []


def test_a_policy_is_sent_whole_with_the_desired_values_on_top() -> None:
    [step] = plan(CURRENT, {"thermal": {"min_fan_pct": 25, "cpu_hard_limit_c": 84}})
    assert isinstance(step, SetPolicy)
    assert step.kind == "thermal"
    assert step.document == merge(CURRENT["thermal"], {"min_fan_pct": 25, "cpu_hard_limit_c": 84})
    assert step.paths == ("thermal.cpu_hard_limit_c", "thermal.min_fan_pct")


def test_no_fan_section_means_no_override() -> None:
    holding = {**CURRENT, "fan": {"override_pct": 60.0, "duration_s": 300.0}}
    assert plan(holding, {}) == [ClearFan()]
    assert plan(holding, {"fan": {"override_pct": 60, "duration_s": 300}}) == []
    assert plan(holding, {"fan": {"override_pct": 70, "duration_s": 300}}) == [
        SetFanOverride(70.0, 300.0)
    ]


def test_tamper_arms_and_disarms_only_when_asked() -> None:
    disarmed = {**CURRENT, "tamper": {"armed": False, "level": "low", "lockdown": False}}
    assert plan(disarmed, {"tamper": {"armed": True, "level": "high"}}) == [
        Arm("high", ("tamper.armed", "tamper.level"))
    ]
    assert plan(CURRENT, {"tamper": {"armed": False}}) == [Disarm()]
    assert plan(CURRENT, {"tamper": {"level": "high"}}) == [Arm("high", ("tamper.level",))]
    assert plan(disarmed, {"tamper": {"level": "high"}}) == []


def test_gpio_lines_are_driven_as_desired() -> None:
    steps = plan(
        CURRENT,
        {
            "gpio": {
                "led": {"value": 1},
                "fan_pwm": {"frequency_hz": 25000, "duty_percent": 40},
                "relay": {"value": 0},
            }
        },
    )
    assert steps == [
        GpioPwm("fan_pwm", 25000.0, 40.0, ("gpio.fan_pwm",)),
        GpioWrite("led", 1, ("gpio.led.value",)),
        GpioWrite("relay", 0, ("gpio.relay.value",)),
    ]


def test_malformed_desired_values_are_rejected_not_dropped() -> None:
    steps = plan(
        CURRENT,
        {
            "thermal": "hot",
            "sampling": {"interval_s": "fast"},
            "fan": {"override_pct": True},
            "tamper": {"armed": "yes"},
            "gpio": {"led": {"value": 2}, "x": {"duty_percent": 5}, "y": 1},
            "config": [],
        },
    )
    rejected = {s.path: s.reason for s in steps if isinstance(s, Reject)}
    assert len(rejected) == len(steps)
    assert set(rejected) == {
        "thermal",
        "sampling",
        "fan.override_pct",
        "tamper.armed",
        "gpio.led",
        "gpio.x",
        "gpio.y",
        "config",
    }
    assert all(rejected.values())
