"""Rack power capping: the two-period guarantee and the floor, property-tested against a
plant whose true idle draw, watts per CPU-% and background load the controller does not
know (it reads only the boards' measured draw); plus examples of the order it acts in."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.brain.decisions.capping import (
    MIN_QUOTA_PCT,
    CappingPolicy,
    CappingState,
    SetFreqCap,
    SetQuota,
    cap_racks,
)
from wrale.fleet.brain.decisions.view import BoardView, FleetView, PlacementView, RackView

FLOOR = 62.5


@dataclass
class Job:
    id: str
    priority: int
    cpu_pct: float
    use: float  # fraction of its hint it really uses
    quota: float | None = None


@dataclass
class Board:
    id: str
    rack: str
    idle_w: float  # true idle draw (the view says 2.7)
    w_per_pct: float  # true watts per CPU-% at full clock (the view implies 0.043)
    background_pct: float  # load no placement accounts for
    floor: float = FLOOR  # the lowest clock it runs at (min_freq_pct)
    jobs: list[Job] = field(default_factory=list)
    cap: float | None = None

    def load_pct(self) -> float:
        used = sum(
            min(j.cpu_pct * j.use, j.cpu_pct if j.quota is None else j.quota) for j in self.jobs
        )
        return min(100.0, self.background_pct + used)

    def power_w(self) -> float:
        clock = (100.0 if self.cap is None else self.cap) / 100.0
        return self.idle_w + self.w_per_pct * self.load_pct() * clock

    def floor_w(self) -> float:
        """The draw with every quota at its minimum and the clock at its floor."""
        least = sum(min(j.cpu_pct * j.use, MIN_QUOTA_PCT) for j in self.jobs)
        load = min(100.0, self.background_pct + least)
        return self.idle_w + self.w_per_pct * load * self.floor / 100.0

    def view(self) -> BoardView:
        placements = tuple(
            PlacementView(j.id, "job-" + j.id, j.priority, j.cpu_pct, cpu_quota_pct=j.quota)
            for j in self.jobs
        )
        return BoardView(
            self.id,
            rack_id=self.rack,
            power_w=self.power_w(),
            reading_age_s=0.0,
            freq_cap_pct=self.cap,
            min_freq_pct=self.floor,
            placements=placements,
        )


def apply(boards: list[Board], actions: list[SetQuota | SetFreqCap]) -> None:
    by_id = {b.id: b for b in boards}
    for a in actions:
        board = by_id[a.device_id]
        if isinstance(a, SetFreqCap):
            board.cap = a.max_freq_pct
        else:
            next(j for j in board.jobs if j.id == a.placement_id).quota = a.cpu_quota_pct


@st.composite
def plants(draw: st.DrawFn) -> tuple[list[Board], dict[str, float]]:
    boards: list[Board] = []
    budgets: dict[str, float] = {}
    for r in range(draw(st.integers(1, 2))):
        rack = f"r{r}"
        for i in range(draw(st.integers(1, 6))):
            board = Board(
                f"{rack}b{i}",
                rack,
                idle_w=draw(st.floats(2.2, 3.2)),
                w_per_pct=draw(st.floats(0.02, 0.07)),
                background_pct=draw(st.sampled_from([0.0, 0.0, 5.0, 15.0])),
                floor=draw(st.sampled_from([FLOOR, FLOOR, 40.0, 75.0])),
            )
            room = 100.0
            for k in range(draw(st.integers(0, 4))):
                cpu = min(room, draw(st.sampled_from([10.0, 25.0, 50.0])))
                if cpu <= 0:
                    break
                room -= cpu
                use = draw(st.floats(0.3, 1.0))
                board.jobs.append(Job(f"{board.id}p{k}", draw(st.integers(0, 100)), cpu, use))
            boards.append(board)
        mine = [b for b in boards if b.rack == rack]
        low = sum(b.idle_w for b in mine) * 0.9
        high = sum(b.power_w() for b in mine) * 1.05
        budgets[rack] = draw(st.floats(low, max(high, low + 1)))
    return boards, budgets


@settings(max_examples=300, deadline=None)
@given(plants(), st.lists(st.lists(st.floats(0.3, 1.0), min_size=24, max_size=24), max_size=20))
def test_feasible_rack_never_over_budget_more_than_two_periods(
    plant: tuple[list[Board], dict[str, float]], usage_steps: list[list[float]]
) -> None:
    boards, budgets = plant
    racks = tuple(RackView(r, budget_w=w) for r, w in budgets.items())
    feasible = {r: sum(b.floor_w() for b in boards if b.rack == r) <= w for r, w in budgets.items()}
    streak = dict.fromkeys(budgets, 0)
    state = CappingState()
    floors = {b.id: b.floor for b in boards}
    for period in range(30):
        if period < len(usage_steps):  # the jobs' real use changes under the controller
            jobs = [j for b in boards for j in b.jobs]
            for j, use in zip(jobs, usage_steps[period], strict=False):
                j.use = use
        for r, w in budgets.items():
            draw = sum(b.power_w() for b in boards if b.rack == r)
            streak[r] = streak[r] + 1 if draw > w + 1e-9 else 0
            if feasible[r]:
                assert streak[r] <= 2, f"rack {r} over its budget {streak[r]} periods in a row"
        view = FleetView(tuple(b.view() for b in boards), racks, now=period * 10.0)
        actions, state = cap_racks(view, state)
        for a in actions:
            if isinstance(a, SetFreqCap):
                assert a.max_freq_pct is None or floors[a.device_id] <= a.max_freq_pct <= 100.0
            else:
                # a board refuses a quota of 0 (as systemd's CPUQuota= does)
                assert a.cpu_quota_pct is None or a.cpu_quota_pct >= MIN_QUOTA_PCT
            assert a.reason
        apply(boards, actions)


def _rack(
    *boards: BoardView, budget: float, draw: float | None = None
) -> tuple[FleetView, RackView]:
    rack = RackView("r1", budget_w=budget, draw_w=draw)
    return FleetView(boards, (rack,), now=0.0), rack


def board(
    dev: str, power: float, *placements: PlacementView, cap: float | None = None
) -> BoardView:
    return BoardView(
        dev, rack_id="r1", power_w=power, reading_age_s=1.0, placements=placements, freq_cap_pct=cap
    )


def test_lowest_priority_quota_is_cut_first_and_no_more_than_needed() -> None:
    low = PlacementView("low", "j1", priority=10, cpu_pct=50)
    high = PlacementView("high", "j2", priority=70, cpu_pct=50)
    # 2.7 W idle + 100 % load × 0.043 W/% = 7.0 W per board: 14 W against a 13 W budget
    view, _ = _rack(board("a", 7.0, low), board("b", 7.0, high), budget=13.0)
    actions, state = cap_racks(view)
    assert [type(a) for a in actions] == [SetQuota]
    (cut,) = actions
    assert isinstance(cut, SetQuota)
    assert cut.placement_id == "low"
    # shed to 95 % of 13 W = 12.35 W: 1.65 W at 0.043 W/% on a 50 % job
    assert cut.cpu_quota_pct is not None
    assert 10 <= cut.cpu_quota_pct <= 12
    assert "13 W budget" in cut.reason
    assert cut.inputs["rack_draw_w"] == 14.0
    assert state.racks["r1"].over_periods == 1


def test_clocks_are_capped_after_the_quotas_and_never_below_the_floor() -> None:
    low = PlacementView("low", "j1", priority=10, cpu_pct=100, cpu_quota_pct=0)
    view, _ = _rack(board("a", 2.7, low), board("b", 7.0), budget=8.0)
    actions, _ = cap_racks(view)
    caps = [a for a in actions if isinstance(a, SetFreqCap)]
    assert caps
    assert all(a.max_freq_pct is not None and a.max_freq_pct >= FLOOR for a in caps)
    assert [a.device_id for a in caps] == ["b"]


def test_second_period_over_budget_takes_the_last_resort() -> None:
    p = PlacementView("p", "j1", priority=95, cpu_pct=100)
    view, _ = _rack(board("a", 7.0, p), budget=5.0)
    state = CappingState()
    _, state = cap_racks(view, state)
    actions, state = cap_racks(view, state)  # the plant did not follow: still over
    quotas = {a.placement_id: a.cpu_quota_pct for a in actions if isinstance(a, SetQuota)}
    caps = {a.device_id: a.max_freq_pct for a in actions if isinstance(a, SetFreqCap)}
    assert quotas == {"p": MIN_QUOTA_PCT}
    assert caps == {"a": FLOOR}
    assert "second period" in actions[0].reason


def test_release_waits_for_room_several_periods_then_gives_back_part_of_it() -> None:
    p = PlacementView("p", "j1", priority=50, cpu_pct=50, cpu_quota_pct=10)
    power = 2.7 + 10 * 0.043 * 0.8
    b = board("a", power, p, cap=80.0)
    view, _ = _rack(b, budget=10.0)
    policy = CappingPolicy()
    state = CappingState()
    for _ in range(policy.release_hold_periods - 1):
        actions, state = cap_racks(view, state, policy)
        assert actions == []
    actions, state = cap_racks(view, state, policy)
    assert actions, "room for three periods: something is released"
    caps = [a for a in actions if isinstance(a, SetFreqCap)]
    assert caps
    assert caps[0].max_freq_pct is None
    for a in actions:
        assert "releasing" in a.reason
    # what it gives back fits in half the room (0.95 × 10 - 3.13 W)
    quota = next(a for a in actions if isinstance(a, SetQuota)).cpu_quota_pct
    added_w = ((quota or 50.0) - 10.0) * 0.043
    assert added_w <= (9.5 - power) * 0.5 + 0.05


def test_a_rack_between_the_thresholds_is_left_alone() -> None:
    p = PlacementView("p", "j1", cpu_pct=50, cpu_quota_pct=30)
    view, _ = _rack(board("a", 9.0, p), budget=10.0)  # 90 %: neither shed nor release
    assert cap_racks(view)[0] == []


def test_a_rack_without_budget_has_its_caps_lifted() -> None:
    p = PlacementView("p", "j1", cpu_pct=50, cpu_quota_pct=30)
    b = replace(board("a", 5.0, p), freq_cap_pct=70.0)
    view = FleetView((b,), (RackView("r1"),))
    actions, _ = cap_racks(view)
    assert {type(a) for a in actions} == {SetQuota, SetFreqCap}
    assert all(
        (a.cpu_quota_pct if isinstance(a, SetQuota) else a.max_freq_pct) is None for a in actions
    )


def test_stale_boards_count_flat_out_and_their_cuts_count_for_nothing() -> None:
    p = PlacementView("p", "j1", priority=10, cpu_pct=50)
    stale = replace(board("a", 2.7, p), reading_age_s=600.0)
    q = PlacementView("q", "j2", priority=20, cpu_pct=50)
    view, _ = _rack(stale, board("b", 4.85, q), budget=10.0)  # 7.0 (worst) + 4.85
    actions, _ = cap_racks(view)
    assert [a.placement_id for a in actions if isinstance(a, SetQuota)] == ["q"]
