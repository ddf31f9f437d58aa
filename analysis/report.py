"""A self-contained HTML report of one or more suites, and (optionally) a live W&B Report.

``python -m analysis.report --source DIR [--suite S ...] --out report.html`` writes one HTML file
that needs nothing else (written offline): per suite the learning curves and the summary table,
the paper figures whose envs have runs (fig1, fig2, fig5), every missing-run warning, and each
run's config, package versions and git commit. Figures are embedded as base64 PNG.

``--publish --entity E --project P`` also builds a W&B Report (``wandb_workspaces.reports.v2``)
with the same curves as live panels: per suite and env a line plot of ``eval/return_mean`` against
``env_steps``, runs grouped by method, mean with a std band (log-x for the model-free comparison),
and saves it (needs ``wandb login``).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import io
import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from analysis.curves import DEFAULT_METRIC, learning_curve_figure
from analysis.figures import FIGURES, MissingRunsWarning, build_figure
from analysis.load import RunInfo, load_runs_and_info
from analysis.tables import summary_table, to_markdown
from analysis.variants import split_variants

MODEL_FREE = ("trpo", "ppo", "ddpg")


def figure_png_base64(fig: Figure) -> str:
    """``fig`` as a base64 PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"/>'


def _table_html(table: pd.DataFrame) -> str:
    """The summary table as HTML, ``mean ± std`` cells like the Markdown version."""
    shown = pd.DataFrame(
        {
            "env": table["env"],
            "method": table["method"],
            "scale": table["scale"],
            "seeds": table["n_seeds"],
        }
    )
    for col in table.columns:
        if col.startswith("return@") and col.endswith("_mean") and table[col].notna().any():
            step = col[len("return@") : -len("_mean")]
            std = table[f"return@{step}_std"]
            shown[f"return @ {step}"] = [_pm(m, s) for m, s in zip(table[col], std, strict=True)]
    shown["final"] = [
        _pm(m, s) for m, s in zip(table["final_mean"], table["final_std"], strict=True)
    ]
    shown["threshold"] = table["threshold"].map(lambda x: f"{x:.1f}")
    shown["steps to threshold"] = [
        _pm(m, s, 0)
        for m, s in zip(
            table["steps_to_threshold_mean"], table["steps_to_threshold_std"], strict=True
        )
    ]
    shown["reached"] = table["reached"]
    shown["MB-MPO speed-up"] = [
        "-" if math.isnan(r) else (">" if lb else "") + f"{r:.2f}x"
        for r, lb in zip(
            table["efficiency_ratio"], table["efficiency_ratio_is_lower_bound"], strict=True
        )
    ]
    return shown.to_html(index=False, escape=True, border=0, classes="summary")


def _pm(mean: float, std: float, digits: int = 1) -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return "-"
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}"


def _run_section(info: RunInfo) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(info.versions.items())) or "-"
    status = "finished" if info.finished else "not finished"
    if info.truncated:
        status += ", file truncated"
    config = html.escape(json.dumps(info.config, indent=2, sort_keys=True, default=str))
    sources = "<br/>".join(html.escape(s) for s in info.sources)
    return (
        f"<details><summary><code>{html.escape(info.run_id)}</code> ({html.escape(info.suite)};"
        f" W&amp;B id {html.escape(info.wandb_id)}; {status}; commit"
        f" <code>{html.escape(info.git_commit or '-')}</code>)</summary>"
        f"<p>versions: {html.escape(versions)}</p><p>files: {sources}</p>"
        f"<pre>{config}</pre></details>"
    )


def build_html(
    df: pd.DataFrame,
    infos: Sequence[RunInfo],
    *,
    source: str,
    metric: str = DEFAULT_METRIC,
    n_seeds: int = 3,
) -> str:
    """The HTML report text (see module docstring)."""
    if df.empty:
        raise ValueError(f"no runs found in {source}: nothing to report")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'/>",
        "<title>MB-MPO suite report</title><style>",
        "body{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em}",
        "img{max-width:100%} table.summary{border-collapse:collapse;font-size:90%}",
        "table.summary td,table.summary th{border:1px solid #ccc;padding:2px 6px}",
        "pre{background:#f6f6f6;padding:.5em;overflow:auto} .warn{color:#a40}",
        "</style></head><body>",
        "<h1>MB-MPO suite report</h1>",
        f"<p>source: <code>{html.escape(source)}</code>; generated"
        f" {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}; metric"
        f" <code>{html.escape(metric)}</code>; {df['run_id'].nunique()} runs.</p>",
    ]
    all_warnings: list[str] = []
    split = split_variants(df, infos)
    for suite in sorted(split["suite"].unique()):
        sub = split[split["suite"] == suite]
        parts.append(f"<h2>Suite <code>{html.escape(str(suite))}</code></h2>")
        parts.append(
            _img(
                figure_png_base64(learning_curve_figure(sub, metric, title=str(suite))),
                f"{suite} curves",
            )
        )
        table = summary_table(sub, metric)
        parts.append(_table_html(table))
        parts.append(
            f"<details><summary>Markdown</summary><pre>{html.escape(to_markdown(table))}</pre></details>"
        )
    envs = set(df["env"].unique())
    for name, spec in FIGURES.items():
        if not envs & set(spec.envs):
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MissingRunsWarning)
            fig = build_figure(name, df, infos, n_seeds=n_seeds, metric=metric)
        for w in caught:  # listed in the report, and passed on to the caller
            if issubclass(w.category, MissingRunsWarning):
                all_warnings.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        parts.append(f"<h2>{html.escape(spec.title)}</h2>")
        parts.append(_img(figure_png_base64(fig), name))
    if all_warnings:
        parts.append("<h2>Missing runs and seeds</h2><ul>")
        parts += [f"<li class='warn'>{html.escape(w)}</li>" for w in all_warnings]
        parts.append("</ul>")
    parts.append("<h2>Runs</h2>")
    parts += [_run_section(i) for i in sorted(infos, key=lambda i: (i.suite, i.run_id))]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    source: str | Path, out: str | Path, suites: Sequence[str] | None = None, **kwargs: Any
) -> Path:
    """Load ``source`` (all suites, or ``suites``) and write the HTML report to ``out``."""
    df, infos = load_runs_and_info(source, suites)
    text = build_html(df, infos, source=str(source), **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def build_wandb_report(
    entity: str,
    project: str,
    panels: Sequence[tuple[str, str, Sequence[str]]],
    *,
    metric: str = DEFAULT_METRIC,
    title: str = "MB-MPO suite report",
) -> Any:
    """A ``wandb_workspaces`` Report (built, not saved) with one live line plot per
    ``(suite, env, methods)``: ``metric`` against ``env_steps``, runs of that suite and env grouped
    by ``config.method``, mean with a std band; log-x when a model-free method is among them."""
    import wandb_workspaces.expr as expr
    import wandb_workspaces.reports.v2 as wr

    if not entity or not project:
        raise ValueError("publishing a W&B Report needs --entity and --project")
    blocks: list[Any] = [
        wr.H1(text=title),
        wr.P(text=f"Mean ± std over seeds of {metric} against real env steps, grouped by method."),
    ]
    for suite in sorted({p[0] for p in panels}):
        blocks.append(wr.H2(text=f"Suite {suite}"))
        for _, env, methods in [p for p in panels if p[0] == suite]:
            runset = wr.Runset(
                entity=entity,
                project=project,
                name=f"{suite}/{env}",
                filters=[expr.Config("suite") == suite, expr.Config("env") == env],
                groupby=["config.method"],
            )
            plot = wr.LinePlot(
                title=env,
                x="env_steps",
                y=[metric],
                log_x=any(m in MODEL_FREE for m in methods),
                groupby_aggfunc="mean",
                groupby_rangefunc="stddev",
                title_x="real env steps",
                title_y="average return",
            )
            blocks.append(wr.PanelGrid(runsets=[runset], panels=[plot]))
    return wr.Report(project=project, entity=entity, title=title, blocks=blocks)


def publish(report: Any) -> str:
    """Save ``report`` to W&B (needs a login); returns its URL."""
    try:
        report.save()
    except Exception as exc:
        raise RuntimeError(
            f"could not save the W&B Report: {exc} (run `wandb login` first)"
        ) from exc
    return str(report.url)


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__)
    parser.add_argument("--source", required=True, help="folder of offline runs or wandb://e/p")
    parser.add_argument("--suite", action="append", help="suite(s) to include (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results") / "analysis" / "report.html")
    parser.add_argument("--metric", default=DEFAULT_METRIC)
    parser.add_argument("--seeds", type=int, default=3, help="seeds expected per curve")
    parser.add_argument("--publish", action="store_true", help="also save a live W&B Report")
    parser.add_argument("--entity", default=None)
    parser.add_argument("--project", default=None)
    args = parser.parse_args(argv)
    if argv is None:  # command line: missing runs are printed already, do not print them twice
        warnings.filterwarnings("ignore", category=MissingRunsWarning)
    if args.publish and not (args.entity and args.project):
        parser.error("--publish needs --entity and --project")
    path = write_report(args.source, args.out, args.suite, metric=args.metric, n_seeds=args.seeds)
    print(path)
    if args.publish:
        df, _ = load_runs_and_info(args.source, args.suite)
        panels = [
            (str(suite), str(env), sorted(g["method"].unique()))
            for (suite, env), g in df.groupby(["suite", "env"], sort=True)
        ]
        print(publish(build_wandb_report(args.entity, args.project, panels, metric=args.metric)))
    return path


if __name__ == "__main__":
    main()
