"""Plotting code on a synthetic tidy frame with known means and stds (artists' data checked)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis.curves import (
    align_group,
    align_seeds,
    learning_curve_figure,
    main,
    plot_learning_curves,
)
from analysis.load import TIDY_COLUMNS

STEPS = np.array([0, 1000, 2000, 3000, 4000])
# three seeds whose values at every step have mean MEAN and sample std STD exactly:
# mean + STD * (-1, 0, 1) has mean `mean` and sample std STD (ddof=1).
MEAN = {
    ("cheetah", "a"): STEPS / 100.0,
    ("cheetah", "b"): 5.0 + STEPS / 400.0,
    ("hop", "a"): -STEPS / 50.0,
}
STD = {("cheetah", "a"): 2.0, ("cheetah", "b"): 0.5, ("hop", "a"): 3.0}
DELTAS = (-1.0, 0.0, 1.0)


def synthetic(scale: float = 1.0) -> pd.DataFrame:
    rows = []
    for (env, method), mean in MEAN.items():
        for seed, delta in enumerate(DELTAS):
            run_id = f"{env}__{method}__s{seed}"
            for step, m in zip(STEPS, mean, strict=True):
                value = m + STD[env, method] * delta
                rows.append(
                    (run_id, "syn", env, method, seed, scale, int(step), "eval/return_mean", value)
                )
                rows.append((run_id, "syn", env, method, seed, scale, int(step), "other", 0.0))
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def _artists(fig: plt.Figure, ax_title: str) -> tuple[plt.Axes, dict[str, object]]:
    (ax,) = [a for a in fig.axes if a.get_title() == ax_title]
    found: dict[str, object] = {}
    for artist in [*ax.lines, *ax.collections]:
        if artist.get_gid():
            found[artist.get_gid()] = artist
    return ax, found


def test_mean_line_and_band_match_known_mean_and_std() -> None:
    fig = learning_curve_figure(synthetic(), best_mean_lines=True)
    try:
        for (env, method), mean in MEAN.items():
            _, art = _artists(fig, env)
            line = art[f"mean:{method}"]
            np.testing.assert_allclose(line.get_xdata(), STEPS)
            np.testing.assert_allclose(line.get_ydata(), mean)
            band = art[f"band:{method}"]
            verts = np.concatenate([p.vertices for p in band.get_paths()])
            for x, m in zip(STEPS, mean, strict=True):
                ys = verts[np.isclose(verts[:, 0], x), 1]
                assert np.isclose(ys.min(), m - STD[env, method]), (env, method, x)
                assert np.isclose(ys.max(), m + STD[env, method]), (env, method, x)
            best = art[f"best:{method}"]
            assert best.get_linestyle() == "--"
            np.testing.assert_allclose(best.get_ydata(), [mean.max()] * 2)
        assert sorted(a.get_title() for a in fig.axes if a.get_visible()) == ["cheetah", "hop"]
    finally:
        plt.close(fig)


def test_seeds_at_different_steps_are_interpolated_on_the_common_range() -> None:
    # seed 0 logs at 0, 100, 200, 300; seed 1 at 50, 150, 250, 350: both linear in step
    s0, s1 = np.array([0, 100, 200, 300.0]), np.array([50, 150, 250, 350.0])
    out = align_group([(s0, 2 * s0), (s1, 2 * s1 + 10)])
    np.testing.assert_allclose(out["env_steps"], [50, 100, 150, 200, 250, 300])
    np.testing.assert_allclose(out["mean"], 2 * out["env_steps"] + 5)
    np.testing.assert_allclose(out["std"], np.std([0, 10], ddof=1))
    assert (out["n_seeds"] == 2).all()
    # NaN values are ignored, a single seed has std 0
    one = align_group([(np.array([0, 1, 2.0]), np.array([1.0, np.nan, 3.0]))])
    np.testing.assert_allclose(one["mean"], [1.0, 3.0])
    np.testing.assert_allclose(one["std"], [0.0, 0.0])


def test_align_seeds_groups_by_env_method_scale() -> None:
    out = align_seeds(synthetic())
    assert set(zip(out["env"], out["method"], strict=True)) == set(MEAN)
    got = out[(out["env"] == "hop") & (out["method"] == "a")]
    np.testing.assert_allclose(got["mean"], MEAN["hop", "a"])
    np.testing.assert_allclose(got["std"], STD["hop", "a"])


def test_scaled_runs_are_marked_and_png_written(tmp_path: Path) -> None:
    fig = learning_curve_figure(synthetic(scale=0.05))
    try:
        _, art = _artists(fig, "cheetah")
        assert "mean:a (scaled budget x0.05)" in art
        assert "scaled budget x0.05" in fig._suptitle.get_text()
        legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert all("scaled budget x0.05" in t for t in legend_texts)
    finally:
        plt.close(fig)
    out = plot_learning_curves(synthetic(), tmp_path / "sub" / "curves.png")
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no runs logged metric 'missing/metric'"):
        plot_learning_curves(synthetic(), tmp_path / "x.png", metric="missing/metric")


def test_cli_on_real_runs(wandb_runs, cache_dir: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "c.png"
    path = main(["--source", str(wandb_runs.suite_dir), "--suite", "mini", "--out", str(out)])
    assert path == out and out.exists()
    assert capsys.readouterr().out.strip() == str(out)
