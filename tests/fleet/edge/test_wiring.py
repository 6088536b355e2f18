"""The agent's settings file reaches its store: outbox bounds, write-behind and seq blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrale.fleet.edge.settings import EdgeSettings
from wrale.fleet.edge.wiring import open_store
from wrale.shared.config import load_settings
from wrale.shared.errors import ConfigError


def edge_settings(tmp_path: Path, toml: str) -> EdgeSettings:
    path = tmp_path / "edge.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n{toml}', encoding="utf-8")
    return load_settings(EdgeSettings, config_file=path, environ={})


def test_a_board_store_writes_behind_by_default(tmp_path: Path) -> None:
    store = open_store(edge_settings(tmp_path, ""))
    try:
        assert store.persist_after_s == 60.0
        assert store.seq_block == 360
        assert store.max_age_s == 7 * 86_400.0
    finally:
        store.close()


def test_outbox_settings_from_the_file(tmp_path: Path) -> None:
    settings = edge_settings(
        tmp_path,
        "outbox_persist_after_s = 15\noutbox_seq_block = 50\noutbox_max_age_s = 3600\n",
    )
    store = open_store(settings)
    try:
        assert (store.persist_after_s, store.seq_block, store.max_age_s) == (15.0, 50, 3600.0)
    finally:
        store.close()


def test_zero_writes_every_row_at_once(tmp_path: Path) -> None:
    store = open_store(edge_settings(tmp_path, "outbox_persist_after_s = 0\n"))
    try:
        assert store.persist_after_s is None
    finally:
        store.close()


@pytest.mark.parametrize(
    ("toml", "setting"),
    [
        ("outbox_persist_after_s = -1\n", "outbox_persist_after_s"),
        ("outbox_seq_block = 0\n", "outbox_seq_block"),
    ],
)
def test_bad_outbox_settings_are_refused_by_name(tmp_path: Path, toml: str, setting: str) -> None:
    with pytest.raises(ConfigError, match=f"setting '{setting}'"):
        edge_settings(tmp_path, toml)


def test_the_packaged_edge_toml_loads_with_its_examples_uncommented(tmp_path: Path) -> None:
    text = (Path(__file__).parents[3] / "packaging/etc/edge.toml").read_text(encoding="utf-8")
    assert edge_settings(tmp_path, text).outbox_persist_after_s == 60.0
    settings = edge_settings(tmp_path, text.replace("# outbox_", "outbox_"))
    assert (settings.outbox_seq_block, settings.outbox_max_rows) == (360, 50_000)
