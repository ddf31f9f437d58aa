"""The paper's figures (reference.md section 3), redrawn from suite runs, as PNG and PDF.

- ``fig1``: MB-MPO vs model-free (TRPO, PPO, DDPG); 2 x 3 panels (Swimmer, HalfCheetah, Walker2D,
  PR2 reach, Hopper, Ant); log-x real env steps up to 1e7; mean +- std over seeds.
  "A dashed line marks the best mean": for every curve, a dashed horizontal line in the curve's
  colour at the **highest value of its seed-mean curve** (the best mean return that method reached
  within its budget). This is what lets the reader compare MB-MPO's level after ~4e5 steps with
  the level the model-free methods only reach after ~1e7 steps on a log axis.
- ``fig2``: MB-MPO vs ME-TRPO vs MB-MPC; same panels; linear x up to 4e5 real env steps.
- ``fig5``: HalfCheetah with horizon 1000 (env ``halfcheetah-h1000``); linear x; alpha = 0.001
  ("MB-MPO") vs alpha = 0 ("no adaptation"). A run's variant is its config key ``variant`` when
  present, else derived from ``method_config["inner_lr"]`` (0.001 -> "MB-MPO", 0 -> "no adaptation",
  anything else -> "alpha=<value>").

Method names are matched case- and punctuation-insensitively (``me-trpo`` = ``metrpo``). Missing
envs, methods or seeds (fewer than ``--seeds``, default 3 as in the paper) are reported with a
:class:`MissingRunsWarning` that is also printed, never silently dropped. Runs with ``scale != 1``
are labelled "scaled budget x<scale>" in the legend and title.

CLI: ``python -m analysis.figures fig1|fig2|fig5 --source DIR [--suite S ...] [--out-dir D]``.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.curves import DEFAULT_METRIC, learning_curve_figure, save_figure
from analysis.load import RunInfo, load_runs_and_info

FIG1_ENVS = ("swimmer", "halfcheetah", "walker2d", "pr2-reach", "hopper", "ant")
ENV_TITLES = {
    "swimmer": "Swimmer",
    "halfcheetah": "HalfCheetah",
    "walker2d": "Walker2D",
    "pr2-reach": "PR2 reach",
    "hopper": "Hopper",
    "ant": "Ant",
    "halfcheetah-h1000": "HalfCheetah (horizon 1000)",
}
METHOD_LABELS = {
    "mbmpo": "MB-MPO",
    "trpo": "TRPO",
    "ppo": "PPO",
    "ddpg": "DDPG",
    "acktr": "ACKTR",
    "metrpo": "ME-TRPO",
    "mbmpc": "MB-MPC",
}
VARIANT_ADAPT = "MB-MPO"
VARIANT_NO_ADAPT = "no adaptation"


class MissingRunsWarning(UserWarning):
    """Runs or seeds a figure expects are absent (the message names them)."""


@dataclass(frozen=True)
class FigureSpec:
    """What one paper figure shows."""

    name: str
    """``fig1`` / ``fig2`` / ``fig5``."""
    envs: tuple[str, ...]
    """Panels, in order."""
    methods: tuple[str, ...]
    """Curves (canonical method names, or variant labels for fig5), in legend order."""
    log_x: bool
    """Log-scale x axis."""
    x_max: float | None
    """Right end of the x axis in real env steps (points beyond are dropped)."""
    best_mean_lines: bool
    """Dashed line at the best mean of each curve (see module docstring)."""
    ncols: int
    """Panels per row."""
    title: str
    """Figure title."""

    def __post_init__(self) -> None:
        if not self.envs or not self.methods:
            raise ValueError(f"FigureSpec {self.name!r}: envs and methods must be non-empty")
        if self.ncols < 1:
            raise ValueError(f"FigureSpec {self.name!r}: ncols must be >= 1, got {self.ncols}")


FIGURES: dict[str, FigureSpec] = {
    "fig1": FigureSpec(
        "fig1",
        FIG1_ENVS,
        ("mbmpo", "trpo", "ppo", "ddpg"),
        log_x=True,
        x_max=1e7,
        best_mean_lines=True,
        ncols=3,
        title="Figure 1: MB-MPO vs model-free methods",
    ),
    "fig2": FigureSpec(
        "fig2",
        FIG1_ENVS,
        ("mbmpo", "metrpo", "mbmpc"),
        log_x=False,
        x_max=4e5,
        best_mean_lines=False,
        ncols=3,
        title="Figure 2: MB-MPO vs model-based methods",
    ),
    "fig5": FigureSpec(
        "fig5",
        ("halfcheetah-h1000",),
        (VARIANT_ADAPT, VARIANT_NO_ADAPT),
        log_x=False,
        x_max=None,
        best_mean_lines=False,
        ncols=1,
        title="Figure 5: with vs without adaptation (horizon 1000)",
    ),
}


def canonical_method(name: str) -> str:
    """``"ME-TRPO"`` -> ``"metrpo"``: lower case without ``-``/``_``/spaces."""
    return re.sub(r"[-_\s]", "", name.lower())


def variant_label(config: Mapping[str, object]) -> str:
    """Figure-5 variant of a run: config ``variant``, else from ``method_config["inner_lr"]``."""
    variant = config.get("variant")
    if variant:
        return str(variant)
    method_config = config.get("method_config")
    lr = method_config.get("inner_lr") if isinstance(method_config, Mapping) else None
    if lr is None:
        raise ValueError(
            f"run {config.get('run_id')!r}: figure 5 needs config 'variant' or"
            " method_config['inner_lr'] to tell 'MB-MPO' from 'no adaptation'"
        )
    lr = float(lr)  # type: ignore[arg-type]
    if lr == 0.0:
        return VARIANT_NO_ADAPT
    if lr == 0.001:
        return VARIANT_ADAPT
    return f"alpha={lr:g}"


def prepare(df: pd.DataFrame, spec: FigureSpec, infos: Sequence[RunInfo] = ()) -> pd.DataFrame:
    """The rows of ``df`` a figure plots, with ``method`` canonical (or the fig5 variant)."""
    if spec.name == "fig5":
        labels = {(i.suite, i.run_id): variant_label(i.config) for i in infos}
        keys = list(zip(df["suite"], df["run_id"], strict=True))
        missing = sorted({k for k in keys if k not in labels})
        if missing:
            raise ValueError(f"fig5: no run config for {missing[:5]} (pass the runs' RunInfo)")
        method = pd.Series([labels[k] for k in keys], index=df.index, dtype="string")
    else:
        method = df["method"].map(canonical_method).astype("string")
    out = df.assign(method=method)
    return out[out["env"].isin(spec.envs) & out["method"].isin(spec.methods)]


def coverage_problems(df: pd.DataFrame, spec: FigureSpec, n_seeds: int) -> list[str]:
    """Messages naming every env, method or seed the figure expects but ``df`` lacks, and runs
    that stop well short of their group's longest run (the curve is cut to the common range)."""
    problems = []
    all_seeds = set(df["seed"].unique().tolist())
    for env in spec.envs:
        env_rows = df[df["env"] == env]
        if env_rows.empty:
            problems.append(f"{spec.name}: no runs for env {env!r} (empty panel)")
            continue
        for method in spec.methods:
            rows = env_rows[env_rows["method"] == method]
            seeds = sorted(set(rows["seed"].unique().tolist()))
            if not seeds:
                problems.append(f"{spec.name}: {env}/{method}: no runs (expected {n_seeds} seeds)")
            elif len(seeds) < n_seeds:
                absent = sorted(all_seeds - set(seeds))
                what = f"missing seeds {absent}" if absent else "missing seed ids unknown"
                problems.append(
                    f"{spec.name}: {env}/{method}: expected {n_seeds} seeds, found {len(seeds)}"
                    f" (seeds {seeds}; {what})"
                )
            if not rows.empty:
                last = rows.groupby(["suite", "run_id"])["env_steps"].max()
                longest = last.max()
                for (_, run_id), stop in last.items():
                    if stop < 0.9 * longest:
                        problems.append(
                            f"{spec.name}: {env}/{method}: run {run_id} stops at {stop} env steps"
                            f" (longest {longest}); the curve is cut to the common range"
                        )
    return problems


def warn_problems(problems: Sequence[str]) -> None:
    """``warnings.warn`` each problem and print it to stderr."""
    for msg in problems:
        warnings.warn(msg, MissingRunsWarning, stacklevel=3)
        print(f"WARNING: {msg}", file=sys.stderr)


def build_figure(
    name: str,
    df: pd.DataFrame,
    infos: Sequence[RunInfo] = (),
    *,
    n_seeds: int = 3,
    metric: str = DEFAULT_METRIC,
) -> Figure:
    """Figure ``name`` (``fig1``/``fig2``/``fig5``) drawn from the tidy ``df`` (``infos``: the
    runs' configs, needed by fig5); warns about missing runs and seeds."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose one of {', '.join(FIGURES)}")
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    spec = FIGURES[name]
    rows = prepare(df[df["metric"] == metric], spec, infos)
    warn_problems(coverage_problems(rows, spec, n_seeds))
    labels = {m: METHOD_LABELS.get(m, m) for m in spec.methods}
    fig = learning_curve_figure(
        rows,
        metric,
        envs=spec.envs,
        methods=spec.methods,
        labels=labels,
        env_titles=ENV_TITLES,
        log_x=spec.log_x,
        x_max=spec.x_max,
        best_mean_lines=spec.best_mean_lines,
        ncols=spec.ncols,
        title=spec.title,
    )
    for ax in fig.axes:
        if ax.get_visible():
            ax.set_ylabel("average return")
    return fig


def make_figure(
    name: str,
    df: pd.DataFrame,
    infos: Sequence[RunInfo] = (),
    *,
    out_dir: Path,
    n_seeds: int = 3,
    metric: str = DEFAULT_METRIC,
) -> list[Path]:
    """:func:`build_figure` written to ``out_dir/<name>.png`` and ``.pdf``; returns the paths."""
    fig = build_figure(name, df, infos, n_seeds=n_seeds, metric=metric)
    return save_figure(fig, Path(out_dir) / f"{name}.png", formats=("pdf",))


def load_for_figures(
    source: str | Path, suites: Sequence[str] | None
) -> tuple[pd.DataFrame, list[RunInfo]]:
    """Tidy frame and run infos of ``source``, for the given suites (all when ``None``)."""
    return load_runs_and_info(source, suites)


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m analysis.figures", description=__doc__)
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--source", required=True, help="folder of offline runs or wandb://e/p")
    parser.add_argument("--suite", action="append", help="suite(s) to include (default: all)")
    parser.add_argument("--out-dir", type=Path, default=Path("results") / "analysis")
    parser.add_argument("--seeds", type=int, default=3, help="seeds expected per curve")
    parser.add_argument("--metric", default=DEFAULT_METRIC)
    args = parser.parse_args(argv)
    if argv is None:  # command line: missing runs are printed already, do not print them twice
        warnings.filterwarnings("ignore", category=MissingRunsWarning)
    df, infos = load_for_figures(args.source, args.suite)
    paths = make_figure(
        args.figure, df, infos, out_dir=args.out_dir, n_seeds=args.seeds, metric=args.metric
    )
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
