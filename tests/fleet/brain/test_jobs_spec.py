"""The pure parts of jobs: the strict check of what a job asks for (hostile inputs are an
``InvalidRequestError`` naming the field, never another exception), the resource hints'
defaults, a job's state from its placements', and the spread order of the placement
seam."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.brain.decisions.placement_input import (
    Candidate,
    PlacementJob,
    choose,
    spread_order,
)
from wrale.fleet.brain.services import job_spec
from wrale.fleet.brain.services.job_state import job_state
from wrale.shared.errors import InvalidRequestError

PROCESS = {"kind": "process", "argv": ["/usr/bin/stress-ng", "--cpu", "1"], "env": {"K": "V"}}


def job(**fields: Any) -> dict[str, Any]:
    return {"name": "render-42", "workload": PROCESS, "replicas": 2, **fields}


def test_a_valid_job_and_its_defaults() -> None:
    spec = job_spec.parse(job())
    assert (spec.priority, spec.strategy, spec.restartable, spec.allow_battery) == (
        50,
        "physical",
        True,
        False,
    )
    assert spec.duration_s is None
    assert spec.max_per_rack is None
    assert spec.workload.model_dump() == PROCESS
    assert job_spec.hints(spec) == (25.0, 1.25)  # one core of four; 5 W at full load
    sim = job_spec.parse(
        {"name": "load", "workload": {"kind": "sim_load", "cpu_pct": 40}, "replicas": 1}
    )
    assert job_spec.hints(sim) == (40.0, 2.0)
    given_hints = job_spec.parse(job(cpu_pct=10, watts=0.7, duration_s=60))
    assert job_spec.hints(given_hints) == (10.0, 0.7)
    assert job_spec.parse(job(workload={"kind": "process", "argv": ["/bin/true"]})).workload
    picked = job_spec.parse(
        job(selector={"tags": ["gpu"], "tags_all": ["rack-a"], "rack_id": "r1"})
    )
    assert job_spec.selector_of(picked) == {"tags_all": ["gpu", "rack-a"], "rack_id": "r1"}
    assert job_spec.selector_of(job_spec.parse(job())) == {}


HOSTILE: list[tuple[Any, str]] = [
    (job(workload={"kind": "process", "argv": []}), "workload.process.argv"),
    (job(workload={"kind": "process", "argv": ["x"] * 65}), "workload.process.argv"),
    (job(workload={"kind": "process", "argv": ["a" * 4097]}), "workload.process.argv.0"),
    (job(workload={"kind": "process", "argv": [""]}), "workload.process.argv.0"),
    (job(workload={"kind": "process", "argv": ["/bin/sh\x00-c"]}), "NUL"),
    (job(workload={"kind": "process", "argv": "/bin/sh -c"}), "workload.process.argv"),
    (job(workload={"kind": "process", "argv": [1, 2]}), "workload.process.argv.0"),
    (
        job(workload={"kind": "process", "argv": ["/x"], "env": {f"K{i}": "v" for i in range(65)}}),
        "workload.process.env",
    ),
    (job(workload={"kind": "process", "argv": ["/x"], "env": {"1BAD": "v"}}), "1BAD"),
    (job(workload={"kind": "process", "argv": ["/x"], "env": {"A-B": "v"}}), "A-B"),
    (job(workload={"kind": "process", "argv": ["/x"], "env": {"K": "a\x00b"}}), "NUL"),
    (job(workload={"kind": "process", "argv": ["/x"], "env": {"K": 1}}), "workload.process.env"),
    (job(workload={"kind": "process", "argv": ["/x"], "shell": True}), "shell"),
    (job(workload={"kind": "shell", "cmd": "rm -rf /"}), "workload"),
    (job(workload={"argv": ["/x"]}), "workload"),
    (job(workload={"kind": "sim_load", "cpu_pct": 101}), "workload.sim_load.cpu_pct"),
    (job(workload={"kind": "sim_load", "cpu_pct": -1}), "workload.sim_load.cpu_pct"),
    (job(workload={"kind": "sim_load", "cpu_pct": "40"}), "workload.sim_load.cpu_pct"),
    (job(workload={"kind": "sim_load"}), "workload.sim_load.cpu_pct"),
    (job(workload="stress-ng"), "workload"),
    (job(replicas=-1), "replicas"),
    (job(replicas=0), "replicas"),
    (job(replicas=1001), "replicas"),
    (job(replicas="3"), "replicas"),
    (job(replicas=True), "replicas"),
    (job(replicas=2.5), "replicas"),
    (job(priority=101), "priority"),
    (job(strategy="random"), "strategy"),
    (job(duration_s=0), "duration_s"),
    (job(duration_s=-5), "duration_s"),
    (job(max_per_rack=0), "max_per_rack"),
    (job(cpu_pct=150), "cpu_pct"),
    (job(watts=-1), "watts"),
    (job(allow_battery="yes"), "allow_battery"),
    (job(selector={"colour": "red"}), "selector.colour"),
    (job(selector={"group_id": "not-an-id"}), "selector.group_id"),
    (job(selector=["rack-a"]), "selector"),
    (job(owner="mallory"), "owner"),
    (job(name=""), "name"),
    (job(name="x" * 101), "name"),
    (job(name="bad\nname"), "name"),
    ({"workload": PROCESS, "replicas": 1}, "name"),
    (["not", "an", "object"], "JSON object"),
    ("job", "JSON object"),
    (None, "JSON object"),
]


@pytest.mark.parametrize(("body", "where"), HOSTILE)
def test_hostile_jobs_are_refused_naming_the_field(body: Any, where: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        job_spec.parse(body)
    assert where in caught.value.message


def test_numbers_that_are_not_finite_are_refused() -> None:
    for body in (job(duration_s=float("inf")), job(cpu_pct=float("nan"))):
        with pytest.raises(InvalidRequestError):
            job_spec.parse(body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "name": JSON,
            "workload": JSON
            | st.fixed_dictionaries(
                {"kind": st.sampled_from(["process", "sim_load"])},
                optional={"argv": JSON, "env": JSON, "cpu_pct": JSON},
            ),
            "replicas": JSON,
            "priority": JSON,
            "selector": JSON,
            "max_per_rack": JSON,
        },
    )
    | JSON
)
def test_any_input_is_a_spec_or_a_clean_refusal(body: Any) -> None:
    problem: InvalidRequestError | None = None
    try:
        job_spec.parse(body)
    except InvalidRequestError as exc:
        problem = exc
    assert problem is None or problem.message


def test_a_jobs_state_follows_its_placements() -> None:
    assert job_state(["pending", "pending"], False) == "pending"
    assert job_state(["running", "pending"], False) == "pending"
    assert job_state(["running", "starting"], False) == "running"
    assert job_state(["succeeded", "running"], False) == "running"
    assert job_state(["succeeded", "succeeded"], False) == "succeeded"
    assert job_state(["succeeded", "failed"], False) == "failed"
    assert job_state(["stopped", "succeeded"], False) == "stopped"
    assert job_state(["succeeded", "failed"], True) == "stopped"
    assert job_state(["running", "stopped"], True) == "running"  # waiting for the board
    assert job_state([], True) == "stopped"


def _cand(device_id: str, name: str, placements: int) -> Candidate:
    return Candidate(device_id, name, None, None, None, placements, 0.0, None)


def test_spread_takes_the_least_loaded_board_then_by_name() -> None:
    boards = [_cand("3", "c", 1), _cand("1", "a", 1), _cand("2", "b", 0), _cand("4", "b", 0)]
    assert [r.candidate.device_id for r in spread_order(boards)] == ["2", "4", "1", "3"]
    pj = PlacementJob("j", "render", 50, "spread", 25.0, 1.25, False, None, True)
    spread = choose(pj, boards, "spread")
    assert spread[0].why.startswith("spread: next eligible board in turn")
    physical = choose(pj, boards, "physical")
    assert [r.candidate for r in physical] == [r.candidate for r in spread]
    assert "physical: no candidate has fresh readings" in physical[0].why  # no view
    assert choose(pj, [], "spread") == []
