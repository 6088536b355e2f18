"""The simulated board's job load: the agent's ``sim_load`` jobs on top of the background
load the simulated fleet drives, the total at most 100 %, heating the board like any load.
"""

from __future__ import annotations

import pytest

from wrale.metal.hw.sim import SimBoard
from wrale.shared.errors import InvalidRequestError


def test_job_load_adds_to_the_background_load_up_to_100(sim_board: SimBoard) -> None:
    assert sim_board.job_load_pct == 0.0
    assert sim_board.total_load_pct == sim_board.load_pct == 10.0
    sim_board.set_job_load(40)
    assert sim_board.load_pct == 10.0  # the background stays the fleet's
    assert sim_board.total_load_pct == 50.0
    sim_board.set_load(80)
    assert sim_board.total_load_pct == 100.0
    status = sim_board.status()
    assert (status["load_pct"], status["job_load_pct"], status["total_load_pct"]) == (80, 40, 100)
    sim_board.set_job_load(0)
    assert sim_board.total_load_pct == 80.0


def test_job_load_heats_the_board(sim_board: SimBoard) -> None:
    idle = SimBoard(sim_board.settings)
    sim_board.set_job_load(90)
    sim_board.advance(600)
    idle.advance(600)
    assert sim_board.soc_temp_c > idle.soc_temp_c + 5
    assert sim_board.status()["power_w"] > idle.status()["power_w"]


@pytest.mark.parametrize("bad", [-1, 100.5, float("nan"), True, "50"])
def test_job_load_is_checked(sim_board: SimBoard, bad: object) -> None:
    with pytest.raises(InvalidRequestError, match="job_load_pct"):
        sim_board.set_job_load(bad)  # type: ignore[arg-type]
    assert sim_board.job_load_pct == 0.0
