"""Per-suite summary tables: returns at fixed real-step counts, real steps to a threshold and
MB-MPO's sample-efficiency ratio over each baseline; mean +- std over seeds; CSV and Markdown.

Definitions (one row per (suite, env, method, scale)):

- ``return@<N>``: each seed's curve linearly interpolated at N real env steps, then mean and sample
  std (ddof=1; 0 for one seed) over seeds. Empty unless **every** seed's logged range covers N.
  Checkpoints: 1e4, 5e4, 1e5, 2e5, 4e5, 1e6, 2e6, 5e6, 1e7, those not beyond the suite's largest
  logged step; when none is (tiny scaled suites), 25/50/75/100 % of that largest step.
- ``final``: each seed's last logged value, mean +- std.
- ``threshold`` (per suite and env): given, else ``best - (1 - frac) * |best|`` where ``best`` is
  the highest ``final`` mean of any method in that env (``frac`` defaults to 0.9, so 90 % of a
  positive best; the rule stays reachable for negative returns).
- ``steps_to_threshold``: per seed, the first logged real step whose value is >= the threshold;
  mean +- std over the seeds that reached it; ``reached`` = "k/n".
- ``efficiency_ratio`` (baselines only): mean steps the baseline needs / mean steps the reference
  method (MB-MPO) needs, same suite, env and scale. When some baseline seed never reached the
  threshold, its last logged step stands in, which gives a lower bound (flagged in
  ``efficiency_ratio_is_lower_bound`` and written ">x" in Markdown). Empty when the reference did
  not reach the threshold with every seed.

CLI: ``python -m analysis.tables --source DIR [--suite S] --out-dir D [--threshold env=value ...]``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.variants import warn_duplicate_seeds

DEFAULT_METRIC = "eval/return_mean"
DEFAULT_CHECKPOINTS = (1e4, 5e4, 1e5, 2e5, 4e5, 1e6, 2e6, 5e6, 1e7)
REFERENCE_METHOD = "mbmpo"
KEY_COLS = ["suite", "env", "method", "scale"]


def choose_checkpoints(max_step: float, checkpoints: Sequence[float] | None = None) -> list[int]:
    """The checkpoints (real env steps) a table reports; see the module docstring."""
    if checkpoints is not None:
        return sorted(int(c) for c in checkpoints)
    inside = [int(c) for c in DEFAULT_CHECKPOINTS if c <= max_step]
    if inside or max_step <= 0:
        return inside
    return sorted({int(round(max_step * f)) for f in (0.25, 0.5, 0.75, 1.0)})


def value_at(steps: np.ndarray, values: np.ndarray, x: float) -> float:
    """Linear interpolation of one seed's curve at ``x``; NaN outside its logged range."""
    if len(steps) == 0 or x < steps[0] or x > steps[-1]:
        return math.nan
    return float(np.interp(x, steps, values))


def first_reach(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """First logged step whose value is >= ``threshold``; NaN if never."""
    hits = np.nonzero(values >= threshold)[0]
    return float(steps[hits[0]]) if len(hits) else math.nan


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray([x for x in xs if not math.isnan(x)], dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def _seed_curves(group: pd.DataFrame) -> list[tuple[int, np.ndarray, np.ndarray]]:
    out = []
    for _, run in group.groupby(["suite", "run_id"], sort=True):
        run = run.dropna(subset=["value"]).sort_values("env_steps")
        if len(run):
            seed = int(run["seed"].iloc[0])
            out.append((seed, run["env_steps"].to_numpy(float), run["value"].to_numpy(float)))
    out.sort(key=lambda c: c[0])
    return out


def summary_table(
    df: pd.DataFrame,
    metric: str = DEFAULT_METRIC,
    *,
    checkpoints: Sequence[float] | None = None,
    thresholds: Mapping[str, float] | None = None,
    threshold_frac: float = 0.9,
    reference: str = REFERENCE_METHOD,
) -> pd.DataFrame:
    """The summary table of one or more suites (rows per suite, env, method, scale).

    :param df: tidy frame (``analysis.load`` columns).
    :param thresholds: per-env threshold overriding the default rule.
    """
    if not 0.0 < threshold_frac <= 1.0:
        raise ValueError(f"threshold_frac must be in (0, 1], got {threshold_frac}")
    sub = df[df["metric"] == metric]
    if sub.empty:
        raise ValueError(f"no rows with metric {metric!r} to tabulate")
    rows: list[dict[str, object]] = []
    for _suite, suite_rows in sub.groupby("suite", sort=True):
        cps = choose_checkpoints(float(suite_rows["env_steps"].max()), checkpoints)
        groups = {}
        for key, g in suite_rows.groupby(KEY_COLS, sort=True):
            warn_duplicate_seeds(g, "/".join(str(k) for k in key))
            groups[key] = _seed_curves(g)
        finals = {
            key: _mean_std([v[-1] for _, _, v in curves])[0] for key, curves in groups.items()
        }
        env_threshold: dict[str, float] = {}
        for env in sorted({k[1] for k in groups}):
            if thresholds and env in thresholds:
                env_threshold[env] = float(thresholds[env])
            else:
                best = max(finals[k] for k in groups if k[1] == env)
                env_threshold[env] = best - (1.0 - threshold_frac) * abs(best)
        for key, curves in groups.items():
            _, env, method, scale = key
            thr = env_threshold[env]
            row: dict[str, object] = dict(zip(KEY_COLS, key, strict=True))
            row["n_seeds"] = len(curves)
            row["seeds"] = " ".join(str(s) for s, _, _ in curves)
            for cp in cps:
                at = [value_at(s, v, cp) for _, s, v in curves]
                mean, std = _mean_std(at) if not any(map(math.isnan, at)) else (math.nan,) * 2
                row[f"return@{cp}_mean"], row[f"return@{cp}_std"] = mean, std
            row["final_mean"], row["final_std"] = _mean_std([v[-1] for _, _, v in curves])
            row["final_steps_mean"] = float(np.mean([s[-1] for _, s, _ in curves]))
            reach = [first_reach(s, v, thr) for _, s, v in curves]
            row["threshold"] = thr
            row["steps_to_threshold_mean"], row["steps_to_threshold_std"] = _mean_std(reach)
            row["reached"] = f"{sum(not math.isnan(r) for r in reach)}/{len(reach)}"
            # steps with unreached seeds replaced by their last step: a lower bound on the mean
            row["_steps_bound"] = float(
                np.mean(
                    [
                        s[-1] if math.isnan(r) else r
                        for r, (_, s, _) in zip(reach, curves, strict=True)
                    ]
                )
            )
            row["_all_reached"] = not any(map(math.isnan, reach))
            rows.append(row)
    table = pd.DataFrame(rows)
    ratio, lower = [], []
    index = {tuple(r[c] for c in KEY_COLS): r for r in rows}
    for r in rows:
        ref = index.get((r["suite"], r["env"], reference, r["scale"]))
        if r["method"] == reference or ref is None or not ref["_all_reached"]:
            ratio.append(math.nan)
            lower.append(False)
            continue
        ref_steps = float(ref["steps_to_threshold_mean"])  # type: ignore[arg-type]
        ratio.append(float(r["_steps_bound"]) / ref_steps if ref_steps > 0 else math.nan)  # type: ignore[arg-type]
        lower.append(not r["_all_reached"])
    table["efficiency_ratio"] = ratio
    table["efficiency_ratio_is_lower_bound"] = lower
    return table.drop(columns=["_steps_bound", "_all_reached"])


def _fmt(x: object, digits: int = 1) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pm(mean: object, std: object) -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return "-"
    return f"{_fmt(mean)} ± {_fmt(std)}"


def step_label(n: int) -> str:
    """``10000`` -> ``"1e4"``, ``12500`` -> ``"1.25e4"``, ``0`` -> ``"0"``."""
    if n == 0:
        return "0"
    mantissa, exponent = f"{n:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _steps(x: float) -> str:
    return f"{x:,.0f}" if not math.isnan(x) else "-"


def to_markdown(table: pd.DataFrame, reference: str = REFERENCE_METHOD) -> str:
    """The table as GitHub Markdown, one section per suite."""
    out = []
    for suite, rows in table.groupby("suite", sort=True):
        cps = [
            c[len("return@") : -len("_mean")]
            for c in rows.columns
            if c.startswith("return@") and c.endswith("_mean")
        ]
        cps = [c for c in cps if rows[f"return@{c}_mean"].notna().any()]
        header = [
            "env",
            "method",
            "scale",
            "seeds",
            *[f"return @ {step_label(int(c))}" for c in cps],
        ]
        header += ["final", "threshold", "steps to threshold", "reached", f"{reference} speed-up"]
        out.append(f"### Suite `{suite}`\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for _, r in rows.iterrows():
            ratio = r["efficiency_ratio"]
            ratio_s = (
                "-"
                if math.isnan(ratio)
                else (">" if r["efficiency_ratio_is_lower_bound"] else "") + f"{ratio:.2f}x"
            )
            cells = [str(r["env"]), str(r["method"]), f"{r['scale']:g}", str(r["n_seeds"])]
            cells += [_pm(r[f"return@{c}_mean"], r[f"return@{c}_std"]) for c in cps]
            cells += [
                _pm(r["final_mean"], r["final_std"]),
                _fmt(r["threshold"]),
                f"{_steps(r['steps_to_threshold_mean'])} ± {_steps(r['steps_to_threshold_std'])}"
                if not math.isnan(r["steps_to_threshold_mean"])
                else "-",
                str(r["reached"]),
                ratio_s,
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def write_tables(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``<out_dir>/<suite>_summary.csv`` and ``.md`` for every suite in ``table``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suite, rows in table.groupby("suite", sort=True):
        empty = [c for c in rows.columns if c.startswith("return@") and rows[c].isna().all()]
        rows = rows.drop(columns=empty)
        csv = out_dir / f"{suite}_summary.csv"
        rows.to_csv(csv, index=False)
        md = out_dir / f"{suite}_summary.md"
        md.write_text(to_markdown(rows) + "\n")
        paths += [csv, md]
    return paths


def _parse_thresholds(items: Sequence[str] | None) -> dict[str, float]:
    out = {}
    for item in items or ():
        env, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"--threshold must look like env=value, got {item!r}")
        out[env] = float(val)
    return out


def main(argv: Sequence[str] | None = None) -> list[Path]:
    from analysis.load import load_runs_and_info
    from analysis.variants import split_variants

    parser = argparse.ArgumentParser(prog="python -m analysis.tables", description=__doc__)
    parser.add_argument("--source", required=True, help="folder of offline runs or wandb://e/p")
    parser.add_argument("--suite", default=None)
    parser.add_argument("--out-dir", type=Path, default=Path("results") / "analysis")
    parser.add_argument("--metric", default=DEFAULT_METRIC)
    parser.add_argument("--threshold", action="append", help="env=value (repeatable)")
    parser.add_argument("--threshold-frac", type=float, default=0.9)
    parser.add_argument("--reference", default=REFERENCE_METHOD)
    args = parser.parse_args(argv)
    df, infos = load_runs_and_info(args.source, [args.suite] if args.suite else None)
    table = summary_table(
        split_variants(df, infos),
        args.metric,
        thresholds=_parse_thresholds(args.threshold),
        threshold_frac=args.threshold_frac,
        reference=args.reference,
    )
    paths = write_tables(table, args.out_dir)
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
