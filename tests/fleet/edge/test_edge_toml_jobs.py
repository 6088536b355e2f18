"""The packaged edge.toml's job examples (``job_allow``, ``job_scope``) load when
uncommented, as an operator would turn them on."""

from __future__ import annotations

from pathlib import Path

from tests.fleet.edge.test_wiring import edge_settings

EDGE_TOML = Path(__file__).parents[3] / "packaging/etc/edge.toml"


def test_the_job_examples_load_uncommented(tmp_path: Path) -> None:
    text = EDGE_TOML.read_text(encoding="utf-8")
    assert edge_settings(tmp_path, text).job_allow == ()  # commented out: nothing runs
    on = text.replace("# job_allow", "job_allow").replace("# job_scope", "job_scope")
    settings = edge_settings(tmp_path, on)
    assert settings.job_allow == (
        ("/usr/bin/stress-ng", "--cpu"),
        ("/usr/bin/python3", "/opt/work/run.py"),
    )
    assert settings.job_scope == "auto"
