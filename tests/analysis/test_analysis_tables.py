"""Summary tables from real offline runs hold the numbers computed independently here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import MISSING, SEEDS, Runs, steps_for, value

from analysis.load import load_runs
from analysis.tables import choose_checkpoints, main, step_label, summary_table, to_markdown


def _seeds(env: str, method: str) -> list[int]:
    return [s for s in SEEDS if (env, method, s) not in MISSING]


def _first_reach(env: str, method: str, seed: int, thr: float) -> float:
    for step in steps_for(seed):
        if value(env, method, seed, step) >= thr:
            return float(step)
    return math.nan


def _row(table: pd.DataFrame, env: str, method: str) -> pd.Series:
    (idx,) = table.index[(table["env"] == env) & (table["method"] == method)]
    return table.loc[idx]


def test_returns_at_checkpoints_final_threshold_and_ratio(
    wandb_runs: Runs, cache_dir: Path
) -> None:
    table = summary_table(load_runs(wandb_runs.suite_dir))
    assert len(table) == 4
    for env in ("halfcheetah", "hopper"):
        finals = {
            m: np.mean([value(env, m, s, steps_for(s)[-1]) for s in _seeds(env, m)])
            for m in ("mbmpo", "ppo")
        }
        best = max(finals.values())
        thr = 0.9 * best
        ref_reach = [_first_reach(env, "mbmpo", s, thr) for s in _seeds(env, "mbmpo")]
        for method in ("mbmpo", "ppo"):
            row = _row(table, env, method)
            seeds = _seeds(env, method)
            assert row["n_seeds"] == len(seeds)
            for cp in (10000, 50000):
                # every seed's line evaluated exactly at the checkpoint
                vals = [value(env, method, s, cp) for s in seeds]
                assert row[f"return@{cp}_mean"] == pytest.approx(np.mean(vals))
                assert row[f"return@{cp}_std"] == pytest.approx(np.std(vals, ddof=1))
            assert "return@100000_mean" not in table.columns  # beyond the suite's range
            finals_m = [value(env, method, s, steps_for(s)[-1]) for s in seeds]
            assert row["final_mean"] == pytest.approx(np.mean(finals_m))
            assert row["final_std"] == pytest.approx(np.std(finals_m, ddof=1))
            assert row["threshold"] == pytest.approx(thr)
            reach = [_first_reach(env, method, s, thr) for s in seeds]
            assert row["reached"] == f"{sum(not math.isnan(r) for r in reach)}/{len(seeds)}"
            if method == "mbmpo":
                assert not any(map(math.isnan, reach))
                assert row["steps_to_threshold_mean"] == pytest.approx(np.mean(reach))
                assert math.isnan(row["efficiency_ratio"])
            else:
                # ppo never gets there: lower bound from its last logged steps
                assert all(map(math.isnan, reach))
                bound = np.mean([steps_for(s)[-1] for s in seeds]) / np.mean(ref_reach)
                assert row["efficiency_ratio"] == pytest.approx(bound)
                assert bool(row["efficiency_ratio_is_lower_bound"])


def test_given_threshold_gives_exact_ratio(wandb_runs: Runs, cache_dir: Path) -> None:
    thr = 100.0
    table = summary_table(load_runs(wandb_runs.suite_dir), thresholds={"halfcheetah": thr})
    mb = [_first_reach("halfcheetah", "mbmpo", s, thr) for s in SEEDS]
    ppo = [_first_reach("halfcheetah", "ppo", s, thr) for s in SEEDS]
    assert not any(map(math.isnan, mb + ppo))
    row = _row(table, "halfcheetah", "ppo")
    assert row["steps_to_threshold_mean"] == pytest.approx(np.mean(ppo))
    assert row["steps_to_threshold_std"] == pytest.approx(np.std(ppo, ddof=1))
    assert row["efficiency_ratio"] == pytest.approx(np.mean(ppo) / np.mean(mb))
    assert not bool(row["efficiency_ratio_is_lower_bound"])
    assert row["efficiency_ratio"] > 1.0  # mbmpo's slope is 5x ppo's


def test_cli_writes_csv_and_markdown(wandb_runs: Runs, cache_dir: Path, tmp_path: Path) -> None:
    paths = main(
        [
            "--source",
            str(wandb_runs.suite_dir),
            "--out-dir",
            str(tmp_path),
            "--threshold",
            "hopper=50",
        ]
    )
    assert sorted(p.name for p in paths) == ["mini_summary.csv", "mini_summary.md"]
    csv = pd.read_csv(tmp_path / "mini_summary.csv")
    table = summary_table(load_runs(wandb_runs.suite_dir), thresholds={"hopper": 50.0})
    pd.testing.assert_series_equal(csv["final_mean"], table["final_mean"], check_names=False)
    assert csv.loc[csv["env"] == "hopper", "threshold"].tolist() == [50.0, 50.0]
    md = (tmp_path / "mini_summary.md").read_text()
    assert "### Suite `mini`" in md and "return @ 1e4" in md and "return @ 5e4" in md
    mb = _row(table, "hopper", "mbmpo")
    assert f"{mb['final_mean']:.1f} ± {mb['final_std']:.1f}" in md
    assert md.count("\n| hopper |") == 2


def test_checkpoints_and_labels() -> None:
    assert choose_checkpoints(4.5e5) == [10000, 50000, 100000, 200000, 400000]
    assert choose_checkpoints(2000) == [500, 1000, 1500, 2000]  # tiny scaled suites
    assert choose_checkpoints(2000, [300, 100]) == [100, 300]
    assert step_label(10000) == "1e4" and step_label(12500) == "1.25e4" and step_label(0) == "0"
    with pytest.raises(ValueError, match="threshold_frac"):
        summary_table(pd.DataFrame({"metric": []}), threshold_frac=1.5)


def test_markdown_marks_lower_bounds(wandb_runs: Runs, cache_dir: Path) -> None:
    md = to_markdown(summary_table(load_runs(wandb_runs.suite_dir)))
    assert ">" in md.split("| halfcheetah | ppo |")[1].split("\n")[0]
