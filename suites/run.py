"""``python -m suites.run NAME_OR_PATH``: run a suite manifest (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from suites.cli_types import positive_float, positive_int
from suites.executors import EXECUTORS, make_executor
from suites.manifest import (
    ManifestError,
    RunSpec,
    available_manifests,
    check_method_configs,
    filter_runs,
    format_scale,
    load_manifest,
)
from suites.progress import TerminalProgress
from suites.runner import DONE, RUN_LOG, RunOptions, RunResult, run_state
from suites.tracking import DEFAULT_PROJECT, MODES, resolve_mode

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_ACTIONS = {
    "run": "run",
    "rerun": "run (failed before)",
    "resume": "resume (checkpoint present)",
    "skip": "skip (finished)",
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from mbmpo.envs import list_envs
    from suites.registry import list_methods

    parser = argparse.ArgumentParser(
        prog="python -m suites.run",
        description=textwrap.fill(
            "Run a suite: every (env, method, seed) of a YAML manifest, in parallel worker "
            "processes, logged to W&B (offline by default, without an API key). Finished runs "
            "(DONE) are skipped and unfinished ones resume from their checkpoints, so the same "
            "command can simply be run again after a crash or Ctrl-C.",
            width=90,
        ),
        epilog=(
            f"manifests: {', '.join(available_manifests()) or '(none)'} (suites/manifests/)\n"
            f"methods:   {', '.join(list_methods())}\n"
            f"envs:      {', '.join(list_envs())}\n\n"
            "results: <results-dir>/<suite>/<run_id>/ with config.yml, run.log, wandb/, DONE or "
            "FAILED.\nexit code: 0 all runs finished, 1 some run failed, 2 bad manifest or "
            "arguments, 130 interrupted.\n\nexamples:\n"
            "  python -m suites.run smoke --dry-run\n"
            "  python -m suites.run smoke --scale 0.1 --jobs 2\n"
            "  python -m suites.run paper_fig1 --executor ray --address 10.0.0.1:6379\n"
            "  python -m suites.run path/to/my_suite.yaml --only 'pendulum__ppo*' --wandb-mode online"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "manifest", metavar="NAME_OR_PATH", help="a manifest name in suites/manifests/ or a path"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the grid and what would happen to each run; write nothing",
    )
    parser.add_argument(
        "--scale",
        type=positive_float,
        default=1.0,
        metavar="F",
        help="multiply the budgets (total env steps, eval_every) by F for a quick look; such runs "
        "get a __x<F> run id suffix and a 'scaled' W&B tag (default 1 = the manifest's budget)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="runs in parallel (default: CPUs // cpus per run)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="results root (default: $MBMPO_RESULTS, else ./results)",
    )
    parser.add_argument(
        "--wandb-mode",
        choices=MODES,
        default=None,
        help="W&B mode; default: $WANDB_MODE, else online when an API key is configured "
        "(WANDB_API_KEY or ~/.netrc), else offline. Online falls back to offline if W&B is "
        "unreachable",
    )
    parser.add_argument(
        "--wandb-project",
        default=DEFAULT_PROJECT,
        metavar="P",
        help=f"W&B project (default: {DEFAULT_PROJECT})",
    )
    parser.add_argument(
        "--wandb-init-timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="seconds an online W&B init may take before the run falls back to offline (default 60)",
    )
    parser.add_argument(
        "--only",
        default=None,
        metavar="PATTERN",
        help="run only the run ids matching PATTERN (shell glob, or a substring; "
        "comma-separated alternatives), e.g. 'ppo' or 'pendulum__*__s0'",
    )
    parser.add_argument(
        "--no-figure", action="store_true", help="do not draw the learning-curve figure at the end"
    )
    parser.add_argument(
        "--executor",
        choices=sorted(EXECUTORS),
        default="local",
        help="where runs execute (default: local worker processes; ray: one Ray task per run on "
        "the cluster at --address, with a results dir shared by all nodes)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="--executor ray: the Ray cluster to join (HOST:PORT of the head node, or 'auto'); "
        "default: $RAY_ADDRESS, else a private local Ray cluster",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=None,
        metavar="N",
        help="--executor ray: retries of a run whose Ray worker or node was lost (default 3)",
    )
    return parser


def results_root(cli_value: Path | None) -> Path:
    """``--results-dir``, else ``$MBMPO_RESULTS``, else ``./results`` (absolute)."""
    root = cli_value or Path(os.environ.get("MBMPO_RESULTS") or "results")
    return root.expanduser().resolve()


def format_grid(specs: Sequence[RunSpec], options: RunOptions) -> list[str]:
    """The dry-run table: run id, env, method, seed, budget, cpus and what would happen."""
    header = (
        "RUN ID",
        "ENV",
        "METHOD",
        "SEED",
        "STEPS",
        "EVAL_EVERY",
        "EVAL_EPS",
        "CPUS",
        "ACTION",
    )
    rows = [
        (
            s.run_id,
            s.env,
            s.method,
            str(s.seed),
            str(s.budget.total_env_steps),
            str(s.budget.eval_every),
            str(s.budget.eval_episodes),
            str(s.cpus),
            _ACTIONS[run_state(options.run_dir(s))],
        )
        for s in specs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _summary(
    results: dict[str, RunResult], skipped: list[RunSpec], options: RunOptions
) -> list[str]:
    lines = []
    by_status: dict[str, int] = {}
    for result in results.values():
        by_status[result.status] = by_status.get(result.status, 0) + 1
    if skipped:
        by_status["skipped (finished before)"] = len(skipped)
    lines.append("summary: " + ", ".join(f"{n} {status}" for status, n in by_status.items()))
    for result in results.values():
        if result.status == "done":
            try:
                done = json.loads((result.run_dir / DONE).read_text())
                lines.append(
                    f"  done    {result.run_id}: {done['env_steps']} env steps, final return "
                    f"{done['final_return']:.1f}, {done['wall_s']:.0f} s"
                )
            except (OSError, ValueError, KeyError, TypeError):
                lines.append(f"  done    {result.run_id}")
    for result in results.values():
        if result.status == "failed":
            lines.append(f"  FAILED  {result.run_id}: {result.run_dir}")
            lines.append(f"          log: {result.run_dir / RUN_LOG}")
            lines.extend(f"          | {line}" for line in result.message.splitlines())
        elif result.status in ("interrupted", "cancelled"):
            lines.append(f"  {result.status} {result.run_id} ({result.message})")
    return lines


def draw_figure(suite: str, suite_dir: Path, specs: Sequence[RunSpec], scale: float) -> Path | None:
    """The learning-curve figure of ``specs`` from the suite's W&B files, via ``analysis``.

    Returns its path, or ``None`` (with the reason on stderr) when it cannot be drawn.
    """
    try:
        from analysis.curves import plot_learning_curves
        from analysis.load import load_runs
    except ImportError as exc:
        print(f"figure skipped: analysis entry points not available ({exc})", file=sys.stderr)
        return None
    # keep analysis's parse cache beside the results, not in the current directory
    os.environ.setdefault("MBMPO_ANALYSIS_CACHE", str(suite_dir.parent / ".analysis_cache"))
    name = "learning_curves" + ("" if scale == 1.0 else f"__x{format_scale(scale)}") + ".png"
    try:
        df = load_runs(suite_dir, suite=suite)
        if "run_id" in df.columns:
            df = df[df["run_id"].isin({s.run_id for s in specs})]
        if df.empty:
            print("figure skipped: no logged rows for these runs", file=sys.stderr)
            return None
        return Path(plot_learning_curves(df, suite_dir / "figures" / name))
    except Exception as exc:  # the runs are safe on disk; a figure problem must not fail them
        print(f"figure skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.executor != "ray" and (args.address is not None or args.max_retries is not None):
        print("error: --address and --max-retries need --executor ray", file=sys.stderr)
        return EXIT_USAGE
    try:
        manifest = load_manifest(args.manifest)
        specs = manifest.expand(scale=args.scale)
        check_method_configs(specs)
        decision = resolve_mode(args.wandb_mode)
    except (ManifestError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    selected = filter_runs(specs, args.only)
    if not selected:
        print(
            f"error: --only {args.only!r} matches none of the {len(specs)} run ids: "
            + ", ".join(s.run_id for s in specs),
            file=sys.stderr,
        )
        return EXIT_USAGE
    options = RunOptions(
        results_root=results_root(args.results_dir),
        wandb_mode=decision.mode,
        wandb_mode_reason=decision.reason,
        wandb_project=args.wandb_project,
        command=shlex.join([Path(sys.executable).name, "-m", "suites.run", *argv]),
        init_timeout_s=args.wandb_init_timeout,
    )
    suite_dir = options.results_root / manifest.name
    scale_note = "" if args.scale == 1.0 else f", budgets scaled x{format_scale(args.scale)}"
    print(
        f"suite {manifest.name} ({manifest.path}): {len(selected)} runs{scale_note}; "
        f"results in {suite_dir}; W&B {decision.mode} ({decision.reason}), "
        f"project {args.wandb_project}"
    )
    if manifest.description:
        print(f"  {manifest.description}")
    if args.dry_run:
        for line in format_grid(selected, options):
            print(line)
        states = [run_state(options.run_dir(s)) for s in selected]
        print(
            "would run {}, resume {}, skip {} (finished); dry run: nothing written".format(
                states.count("run") + states.count("rerun"),
                states.count("resume"),
                states.count("skip"),
            )
        )
        return EXIT_OK

    skipped = [s for s in selected if run_state(options.run_dir(s)) == "skip"]
    todo = [s for s in selected if s not in skipped]
    if skipped:
        print(f"skipping {len(skipped)} finished runs (DONE)")
    executor_options: dict[str, object] = {}
    if args.executor == "ray":
        executor_options["address"] = args.address
        if args.max_retries is not None:
            executor_options["max_retries"] = args.max_retries
    executor = make_executor(args.executor, jobs=args.jobs, **executor_options)
    progress = TerminalProgress(manifest.name, todo, options)
    try:
        results = executor.run(todo, options, progress) if todo else {}
    except ConnectionError as exc:  # e.g. no Ray cluster at --address
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        progress.close()
    for line in _summary(results, skipped, options):
        print(line)

    statuses = {r.status for r in results.values()}
    if statuses & {"interrupted", "cancelled"}:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = EXIT_FAILED if "failed" in statuses else EXIT_OK
    if not args.no_figure and decision.mode != "disabled":
        figure = draw_figure(manifest.name, suite_dir, selected, args.scale)
        if figure is not None:
            print(figure)
    return code


if __name__ == "__main__":
    sys.exit(main())
