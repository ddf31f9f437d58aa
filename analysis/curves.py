"""Learning curves: mean +- std over seeds per method, one panel per env, x = real env steps.

Seed alignment: the seeds of one (env, method, scale) log at slightly different ``env_steps``.
Each seed's curve is **linearly interpolated** (``numpy.interp``) onto a common grid: the union of
all the seeds' logged steps that lie inside the range every seed covers, ``[max of first steps,
min of last steps]``. Nothing is extrapolated, so the band at every plotted x is over all seeds
(``n_seeds`` of the group); where the seeds share the same steps the grid is exactly those steps
and the values are the logged ones. ``std`` is the sample standard deviation (ddof=1); it is 0 for
a single seed.

CLI: ``python -m analysis.curves --source DIR [--suite S] [--out PNG] [--metric M]`` prints the
path of the written figure.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import EngFormatter, MaxNLocator  # noqa: E402

from analysis.variants import warn_duplicate_seeds  # noqa: E402

DEFAULT_METRIC = "eval/return_mean"
GROUP_COLS = ["env", "method", "scale"]
ALIGNED_COLUMNS = [*GROUP_COLS, "env_steps", "mean", "std", "n_seeds"]


def align_group(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Mean and std over seeds of the curves ``[(steps [T_i], values [T_i]), ...]`` on the common
    grid described in the module docstring. Returns columns ``env_steps, mean, std, n_seeds``."""
    curves = []
    for steps, values in series:
        keep = np.isfinite(values)
        steps, values = np.asarray(steps, float)[keep], np.asarray(values, float)[keep]
        order = np.argsort(steps, kind="stable")
        if len(steps):
            curves.append((steps[order], values[order]))
    empty = pd.DataFrame({"env_steps": [], "mean": [], "std": [], "n_seeds": []})
    if not curves:
        return empty
    lo = max(s[0] for s, _ in curves)
    hi = min(s[-1] for s, _ in curves)
    if lo > hi:
        return empty
    grid = np.unique(np.concatenate([s[(s >= lo) & (s <= hi)] for s, _ in curves]))
    stacked = np.stack([np.interp(grid, s, v) for s, v in curves])  # [seeds, grid]
    n = stacked.shape[0]
    std = stacked.std(axis=0, ddof=1) if n > 1 else np.zeros(len(grid))
    return pd.DataFrame({"env_steps": grid, "mean": stacked.mean(axis=0), "std": std, "n_seeds": n})


def align_seeds(df: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Per (env, method, scale): the seeds of ``metric`` aligned (see module docstring).

    :param df: tidy frame (``analysis.load`` columns).
    :returns: columns ``env, method, scale, env_steps, mean, std, n_seeds``.
    """
    sub = df[df["metric"] == metric]
    run_keys = ["suite", "run_id"] if "suite" in sub.columns else ["run_id"]
    parts = []
    for key, group in sub.groupby(GROUP_COLS, sort=True):
        if "suite" in group.columns:
            warn_duplicate_seeds(group, "/".join(str(k) for k in key))
        series = [
            (run["env_steps"].to_numpy(float), run["value"].to_numpy(float))
            for _, run in group.groupby(run_keys, sort=True)
        ]
        aligned = align_group(series)
        for col, val in zip(GROUP_COLS, key, strict=True):
            aligned.insert(GROUP_COLS.index(col), col, val)
        parts.append(aligned)
    if not parts:
        return pd.DataFrame(columns=ALIGNED_COLUMNS)
    return pd.concat(parts, ignore_index=True)[ALIGNED_COLUMNS]


def curve_label(method: str, scale: float, labels: Mapping[str, str] | None = None) -> str:
    """Legend label; budgets other than the paper's are always marked."""
    name = (labels or {}).get(method, method)
    return name if float(scale) == 1.0 else f"{name} (scaled budget x{float(scale):g})"


def method_colors(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A stable colour per method (seaborn's colour-blind palette)."""
    palette = sns.color_palette("colorblind", max(len(methods), 1))
    return {m: tuple(palette[i % len(palette)]) for i, m in enumerate(methods)}


def learning_curve_figure(
    df: pd.DataFrame,
    metric: str = DEFAULT_METRIC,
    *,
    envs: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    env_titles: Mapping[str, str] | None = None,
    log_x: bool = False,
    x_max: float | None = None,
    best_mean_lines: bool = False,
    ncols: int | None = None,
    title: str | None = None,
) -> Figure:
    """The learning-curve figure (one panel per env; a line + band per (method, scale)).

    Artists carry ``gid``s for inspection: ``"mean:<label>"`` (line), ``"band:<label>"`` (the
    ``fill_between`` band mean +- std), ``"best:<label>"`` (dashed horizontal line at the highest
    point of the mean curve, when ``best_mean_lines``).

    :param df: tidy frame; ``methods`` restricts and orders the methods, ``envs`` the panels (an env
        with no data gets an empty panel saying so).
    :param x_max: drop points beyond this many real env steps and end the x axis there.
    """
    sub = df[df["metric"] == metric]
    if methods is not None:
        sub = sub[sub["method"].isin(list(methods))]
    aligned = align_seeds(sub, metric)
    if x_max is not None:
        aligned = aligned[aligned["env_steps"] <= x_max]
    if log_x:
        aligned = aligned[aligned["env_steps"] > 0]
    env_list = list(envs) if envs is not None else sorted(sub["env"].unique())
    if not env_list:
        raise ValueError(f"no runs logged metric {metric!r}: nothing to plot")
    method_list = list(methods) if methods is not None else sorted(sub["method"].unique())
    colors = method_colors(method_list)
    ncols = ncols or min(3, len(env_list))
    nrows = -(-len(env_list) // ncols)
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    handles: dict[str, Artist] = {}
    for idx, env in enumerate(env_list):
        ax = axes[idx // ncols][idx % ncols]
        ax.set_title((env_titles or {}).get(env, env))
        ax.set_xlabel("real env steps")
        ax.set_ylabel(metric)
        if log_x:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100k, 1M
        env_rows = aligned[aligned["env"] == env]
        if env_rows.empty:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        for (method, scale), curve in env_rows.groupby(["method", "scale"], sort=False):
            label = curve_label(str(method), float(scale), labels)
            color = colors.get(str(method), (0.3, 0.3, 0.3))
            x = curve["env_steps"].to_numpy(float)
            mean = curve["mean"].to_numpy(float)
            std = curve["std"].to_numpy(float)
            style = "-" if float(scale) == 1.0 else ":"  # scaled budgets never look like paper runs
            (line,) = ax.plot(
                x, mean, color=color, linestyle=style, label=label, gid=f"mean:{label}"
            )
            ax.fill_between(
                x, mean - std, mean + std, color=color, alpha=0.25, linewidth=0, gid=f"band:{label}"
            )
            if best_mean_lines and len(mean):
                ax.axhline(
                    float(mean.max()), color=color, linestyle="--", linewidth=1, gid=f"best:{label}"
                )
            handles.setdefault(label, line)
        if x_max is not None:
            ax.set_xlim(right=x_max)
    for idx in range(len(env_list), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_visible(False)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles.keys()),
            loc="lower center",
            ncol=min(len(handles), 4),
            frameon=False,
        )
    scaled = sorted({float(s) for s in aligned["scale"].unique() if float(s) != 1.0})
    full_title = title or ""
    if scaled:
        note = "scaled budget " + ", ".join(f"x{s:g}" for s in scaled)
        full_title = f"{full_title} ({note})" if full_title else note
    if full_title:
        fig.suptitle(full_title)
    legend_rows = -(-len(handles) // 4) if handles else 0
    fig.tight_layout(rect=(0, 0.04 * legend_rows + 0.02 * bool(legend_rows), 1, 1))
    return fig


def save_figure(fig: Figure, out: str | Path, formats: Sequence[str] | None = None) -> list[Path]:
    """Save ``fig`` to ``out`` (and to ``out`` with each other suffix in ``formats``); closes it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out] + [out.with_suffix("." + f.lstrip(".")) for f in formats or ()]
    for path in dict.fromkeys(paths):
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return list(dict.fromkeys(paths))


def plot_learning_curves(df: pd.DataFrame, out: Path, metric: str = DEFAULT_METRIC) -> Path:
    """Mean +- std over seeds per method, one panel per env, x = real env steps; writes a PNG."""
    fig = learning_curve_figure(df, metric)
    return save_figure(fig, out)[0]


def main(argv: Sequence[str] | None = None) -> Path:
    from analysis.load import load_runs_and_info
    from analysis.variants import split_variants

    parser = argparse.ArgumentParser(prog="python -m analysis.curves", description=__doc__)
    parser.add_argument("--source", required=True, help="folder of offline runs or wandb://e/p")
    parser.add_argument("--suite", default=None, help="only this suite (W&B group)")
    parser.add_argument("--metric", default=DEFAULT_METRIC)
    parser.add_argument("--out", type=Path, default=None, help="PNG path")
    args = parser.parse_args(argv)
    df, infos = load_runs_and_info(args.source, [args.suite] if args.suite else None)
    df = split_variants(df, infos)
    out = args.out or Path("results") / "analysis" / f"{args.suite or 'all'}_curves.png"
    path = plot_learning_curves(df, out, args.metric)
    print(path)
    return path


if __name__ == "__main__":
    main()
