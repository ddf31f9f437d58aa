"""The paper figures from real offline runs: files, panels, curves and missing-run warnings."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from analysis_fixtures import OFFSET, Runs, steps_for, value

from analysis.figures import (
    FIG1_ENVS,
    MissingRunsWarning,
    build_figure,
    canonical_method,
    load_for_figures,
    main,
    variant_label,
)


def _gid_artists(fig: plt.Figure, title: str) -> tuple[plt.Axes, dict[str, object]]:
    (ax,) = [a for a in fig.axes if a.get_title() == title]
    return ax, {a.get_gid(): a for a in [*ax.lines, *ax.collections] if a.get_gid()}


def _expected_mean(env: str, method: str, seeds: list[int], grid: np.ndarray) -> np.ndarray:
    """Every seed is linear in the step, so interpolation is exact: mean of the seed lines."""
    return np.mean([[value(env, method, s, x) for x in grid] for s in seeds], axis=0)


def test_fig1_panels_curves_best_mean_and_warnings(
    wandb_runs: Runs, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df, infos = load_for_figures(wandb_runs.root, ["mini"])
    with pytest.warns(MissingRunsWarning) as record:
        fig = build_figure("fig1", df, infos)
    messages = [str(w.message) for w in record]
    try:
        for env in ("swimmer", "walker2d", "pr2-reach", "ant"):
            assert any(f"no runs for env {env!r}" in m for m in messages), env
        assert any("hopper/ppo: expected 3 seeds, found 2" in m and "[2]" in m for m in messages)
        assert any("halfcheetah/trpo: no runs" in m for m in messages)
        assert any("hopper/ddpg: no runs" in m for m in messages)
        assert not any("halfcheetah/mbmpo" in m for m in messages)  # 3 seeds incl. the resumed one
        assert "hopper/ppo: expected 3 seeds" in capsys.readouterr().err  # printed too
        titles = [a.get_title() for a in fig.axes if a.get_visible()]
        assert titles == ["Swimmer", "HalfCheetah", "Walker2D", "PR2 reach", "Hopper", "Ant"]
        ax, art = _gid_artists(fig, "HalfCheetah")
        assert ax.get_xscale() == "log"
        line = art["mean:MB-MPO"]
        x = np.asarray(line.get_xdata(), float)
        # log-x: step 0 is dropped; grid = the seeds' steps inside the common range
        hi = min(steps_for(s)[-1] for s in (0, 1, 2))  # every seed starts at step 0
        grid = np.unique([st for s in (0, 1, 2) for st in steps_for(s) if 0 < st <= hi])
        np.testing.assert_allclose(x, grid)
        np.testing.assert_allclose(
            line.get_ydata(), _expected_mean("halfcheetah", "mbmpo", [0, 1, 2], grid)
        )
        best = art["best:MB-MPO"]
        assert best.get_linestyle() == "--"
        assert best.get_ydata()[0] == pytest.approx(max(line.get_ydata()))
        _, hop = _gid_artists(fig, "Hopper")
        ppo = hop["mean:PPO"]
        np.testing.assert_allclose(
            ppo.get_ydata(),
            _expected_mean("hopper", "ppo", [0, 1], np.asarray(ppo.get_xdata(), float)),
        )
    finally:
        plt.close(fig)


def test_fig2_linear_axis_up_to_4e5_and_missing_baselines(
    wandb_runs: Runs, cache_dir: Path
) -> None:
    df, infos = load_for_figures(wandb_runs.suite_dir, None)
    with pytest.warns(MissingRunsWarning) as record:
        fig = build_figure("fig2", df, infos)
    messages = [str(w.message) for w in record]
    try:
        assert any("halfcheetah/metrpo: no runs" in m for m in messages)
        assert any("hopper/mbmpc: no runs" in m for m in messages)
        ax, art = _gid_artists(fig, "Hopper")
        assert ax.get_xscale() == "linear"
        assert ax.get_xlim()[1] == pytest.approx(4e5)
        assert "mean:MB-MPO" in art and "mean:PPO" not in art  # ppo is not in figure 2
    finally:
        plt.close(fig)


def test_fig5_variants_from_inner_lr_and_files(
    wandb_runs: Runs, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "figs"
    with pytest.warns(MissingRunsWarning, match="expected 3 seeds, found 2"):
        paths = main(
            ["fig5", "--source", str(wandb_runs.root), "--suite", "fig5", "--out-dir", str(out)]
        )
    assert sorted(p.name for p in paths) == ["fig5.pdf", "fig5.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert (out / "fig5.pdf").read_bytes()[:4] == b"%PDF"
    df, infos = load_for_figures(wandb_runs.root, ["fig5"])
    with pytest.warns(MissingRunsWarning):
        fig = build_figure("fig5", df, infos)
    try:
        _, art = _gid_artists(fig, "HalfCheetah (horizon 1000)")
        for label, method in (("MB-MPO", "mbmpo"), ("no adaptation", "mbmpo-noadapt")):
            line = art[f"mean:{label}"]
            x = np.asarray(line.get_xdata(), float)
            assert x[0] == 0
            np.testing.assert_allclose(
                line.get_ydata(), _expected_mean("halfcheetah-h1000", method, [0, 1], x)
            )
    finally:
        plt.close(fig)


def test_scaled_runs_are_marked(wandb_runs: Runs, cache_dir: Path) -> None:
    df, infos = load_for_figures(wandb_runs.root, ["mini-scaled"])
    with pytest.warns(MissingRunsWarning):
        fig = build_figure("fig2", df, infos)
    try:
        _, art = _gid_artists(fig, "Hopper")
        assert "mean:MB-MPO (scaled budget x0.05)" in art
        assert "scaled budget x0.05" in fig._suptitle.get_text()
    finally:
        plt.close(fig)


def test_variant_label_and_method_names() -> None:
    assert variant_label({"variant": "custom", "method_config": {"inner_lr": 0.0}}) == "custom"
    assert variant_label({"method_config": {"inner_lr": 0.001}}) == "MB-MPO"
    assert variant_label({"method_config": {"inner_lr": 0}}) == "no adaptation"
    assert variant_label({"method_config": {"inner_lr": 0.01}}) == "alpha=0.01"
    with pytest.raises(ValueError, match="inner_lr"):
        variant_label({"run_id": "x", "method_config": {}})
    assert canonical_method("ME-TRPO") == "metrpo" and canonical_method("mb_mpc") == "mbmpc"
    assert len(FIG1_ENVS) == 6 and OFFSET  # fixture sanity


def test_unknown_figure_is_a_clear_error(wandb_runs: Runs, cache_dir: Path) -> None:
    df, infos = load_for_figures(wandb_runs.suite_dir, None)
    with pytest.raises(ValueError, match="unknown figure 'fig9'; choose one of fig1, fig2, fig5"):
        build_figure("fig9", df, infos)
