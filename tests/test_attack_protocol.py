"""Tests of the targets' NDCG and of the attack-protocol study table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simulator.analysis.attack_protocol import (
    protocol_markdown,
    protocol_table,
    write_protocol_study,
)
from simulator.foundations.errors import PrivsimError
from simulator.metrics.target_standing import TargetView


def test_target_ndcg_scores_each_pair_by_its_rank() -> None:
    # Target 0: ranks 0 and 3 (and one user who rated it); target 1: ranks 60 and 1.
    ranks = np.array([[0, 60], [3, 1], [-1, 1]])
    view = TargetView(np.arange(3), np.array([7, 8]), np.zeros((3, 2)), ranks)
    first = (1.0 + 1.0 / np.log2(5)) / 2
    second = (0.0 + 2 / np.log2(3)) / 3
    assert view.ndcg(50) == pytest.approx((first + second) / 2)
    assert view.ndcg(1) == pytest.approx((0.5 + 0.0) / 2)
    assert view.hit_rate(50) == pytest.approx((1.0 + 2 / 3) / 2)
    assert math.isnan(TargetView(np.arange(1), np.array([7]), np.zeros((1, 1)),
                                 np.array([[-1]])).ndcg(10))


def _metrics() -> pd.DataFrame:
    """Two models x two attacks x three seeds, each point with steps 0 and 1."""
    rows = []
    point = 0
    for model in ("bpr", "lightgcn"):
        for attack in ("random", "bandwagon"):
            for seed in range(3):
                for step in (0, 1):
                    hit = 0.01 * (seed + 1) * (2 if attack == "bandwagon" else 1) * step
                    rows.append({"point": point, "seed": seed, "step": step,
                                 "platform.model": model, "attackers.0.model": attack,
                                 "target_hr_50": hit, "target_ndcg_50": hit / 4,
                                 "target_hr_50_clean": 0.001 * seed,
                                 "target_ndcg_50_clean": 0.0})
                point += 1
    return pd.DataFrame(rows)


def test_protocol_table_adds_clean_twins_as_no_attack_and_the_published_values() -> None:
    table = protocol_table(_metrics())
    assert list(zip(table["model"], table["attack"], strict=True)) == [
        ("bpr", "none"), ("bpr", "random"), ("bpr", "bandwagon"),
        ("lightgcn", "none"), ("lightgcn", "random"), ("lightgcn", "bandwagon")]
    assert (table["runs"] == 3).all()
    random = table[(table["model"] == "lightgcn") & (table["attack"] == "random")].iloc[0]
    assert random["target_hr_50"] == pytest.approx(0.02)  # last step, mean of 0.01..0.03
    half = 4.302652729911275 * 0.01 / np.sqrt(3)  # t(0.975, 2) x std / sqrt(3)
    assert random["target_hr_50_ci"] == pytest.approx(half)
    assert random["arlib_hr_50"] == pytest.approx(0.0106)
    none = table[(table["model"] == "lightgcn") & (table["attack"] == "none")].iloc[0]
    assert none["target_hr_50"] == pytest.approx(0.001) and none["arlib_hr_50"] == 0.0
    assert table[table["model"] == "bpr"]["arlib_hr_50"].isna().all()
    text = protocol_markdown(table)
    assert "| lightgcn | random | 3 | 0.0200 ± " in text and "| 0.0106 |" in text
    assert "| bpr | none | 3 |" in text and text.count("–") == 3


def test_the_study_writes_its_table_three_ways(tmp_path) -> None:
    table = write_protocol_study(tmp_path, _metrics())
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "attack_protocol.parquet"), table)
    assert len(pd.read_csv(tmp_path / "attack_protocol.csv")) == len(table) == 6
    assert (tmp_path / "attack_protocol.md").read_text() == protocol_markdown(table)


def test_protocol_table_refuses_a_sweep_without_the_grid() -> None:
    with pytest.raises(PrivsimError, match="platform.model"):
        protocol_table(_metrics().drop(columns=["platform.model"]))
