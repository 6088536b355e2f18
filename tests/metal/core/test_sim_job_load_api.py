"""The simulated job load through metald: ``PUT /v1/sim/job_load`` and both MetalClients'
``sim_set_job_load``, checked like the background load, 404 without the simulator."""

from __future__ import annotations

import httpx
import pytest

from tests.metal.core.server_harness import API_KEY, TIMEOUT_S, running_metald
from wrale.metal.core.client import HttpMetalClient, InProcessMetalClient, MetalClient
from wrale.shared.errors import InvalidRequestError, NotFoundError


async def test_put_job_load_sets_the_boards_job_load() -> None:
    async with running_metald() as m:
        c = m.client()
        seq = m.core.current().seq
        resp = await c.put("/v1/sim/job_load", json={"percent": 35})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["sim"]["job_load_pct"] == 35.0
        assert body["sim"]["load_pct"] == 10.0
        assert body["sim"]["total_load_pct"] == 45.0
        assert body["state"]["seq"] == seq + 1  # sampled after the change
        assert m.board.job_load_pct == 35.0
        for bad in ({"percent": 120}, {"percent": "all"}, {"pct": 5}):
            assert (await c.put("/v1/sim/job_load", json=bad)).status_code == 422, bad


async def test_job_load_is_404_without_the_simulator() -> None:
    async with running_metald(sim=False) as m:
        resp = await m.client().put("/v1/sim/job_load", json={"percent": 10})
        assert resp.status_code == 404


@pytest.mark.parametrize("kind", ["in-process", "http"])
async def test_both_clients_set_the_job_load(kind: str) -> None:
    async with running_metald() as m:
        client: MetalClient = (
            HttpMetalClient(m.url, API_KEY, timeout=TIMEOUT_S)
            if kind == "http"
            else InProcessMetalClient(m.core, m.diagnostics)
        )
        async with client as c:
            out = await c.sim_set_job_load(60)
            assert out["sim"]["job_load_pct"] == 60.0
            assert m.board.total_load_pct == 70.0
            with pytest.raises(InvalidRequestError):
                await c.sim_set_job_load(101)
    async with running_metald(sim=False) as m:
        plain = InProcessMetalClient(m.core, m.diagnostics)
        with pytest.raises(NotFoundError):
            await plain.sim_set_job_load(10)


async def test_unauthenticated_job_load_is_refused() -> None:
    async with running_metald() as m, httpx.AsyncClient(base_url=m.url) as c:
        resp = await c.put("/v1/sim/job_load", json={"percent": 10})
        assert resp.status_code == 401
        assert m.board.job_load_pct == 0.0
