"""Run ONE :class:`~suites.manifest.RunSpec` in the current process.

:func:`execute` sets the torch threads, writes ``command.txt`` and ``config.yml``, starts the
W&B tracker, builds the method (``Method(env_spec, seed, config, tracker, run_dir)``), trains it,
finishes W&B with the exit code and writes ``DONE`` last (or ``FAILED`` with the traceback).

Executors run it in a worker: ``python -m suites.runner <run_dir>/run_spec.json`` (exit code 0 =
done, 1 = failed, 130 = interrupted). SIGTERM is handled like Ctrl-C: W&B is finished with a
non-zero code and no ``DONE`` is written, so the next invocation resumes the run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from mbmpo.protocols import Tracker
from suites.journal import HISTORY_FILE
from suites.manifest import RunSpec
from suites.tracking import (
    CONFIG_FILE,
    PROGRESS_FILE,
    ModeDecision,
    WandbTracker,
    git_state,
    package_versions,
    write_json,
    write_yaml,
)

DONE = "DONE"
FAILED = "FAILED"
RUN_LOG = "run.log"
COMMAND_FILE = "command.txt"
SPEC_FILE = "run_spec.json"
SUITE_FILES = frozenset(
    {
        DONE,
        FAILED,
        RUN_LOG,
        COMMAND_FILE,
        SPEC_FILE,
        CONFIG_FILE,
        PROGRESS_FILE,
        HISTORY_FILE,
        "wandb",
    }
)
"""Entries of a run folder written by the suite; anything else is the method's (checkpoints)."""
EXIT_DONE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(frozen=True)
class RunOptions:
    """Where and how runs execute; the same for every run of one suite invocation."""

    results_root: Path
    """Results root (absolute); a run lives in ``<results_root>/<suite>/<run_id>/``."""
    wandb_mode: str = "offline"
    """Requested W&B mode, already resolved by the mode rule: online, offline or disabled."""
    wandb_mode_reason: str = "default"
    """Which rule chose ``wandb_mode`` (recorded in config.yml)."""
    wandb_project: str = "mbmpo-suite"
    """W&B project."""
    command: str = ""
    """The suite command line, recorded in config.yml and command.txt."""
    init_timeout_s: float = 60.0
    """W&B ``init_timeout`` for online runs, after which a run falls back to offline."""
    device: str = "cpu"
    """Torch device passed to methods."""

    def __post_init__(self) -> None:
        if not self.results_root.is_absolute():
            raise ValueError(f"RunOptions.results_root must be absolute, got {self.results_root}")
        if self.wandb_mode not in ("online", "offline", "disabled"):
            raise ValueError(
                f"RunOptions.wandb_mode must be online, offline or disabled, got {self.wandb_mode!r}"
            )
        if self.init_timeout_s <= 0:
            raise ValueError(f"RunOptions.init_timeout_s must be > 0, got {self.init_timeout_s}")

    def run_dir(self, spec: RunSpec) -> Path:
        """The folder of ``spec``'s run."""
        return self.results_root / spec.suite / spec.run_id

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["results_root"] = str(self.results_root)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        return cls(**{**data, "results_root": Path(data["results_root"])})


@dataclass(frozen=True)
class RunResult:
    """How one run ended."""

    run_id: str
    """The run's id."""
    status: str
    """``done``, ``skipped`` (was already DONE), ``failed``, ``interrupted`` or ``cancelled``
    (never started because the suite was interrupted)."""
    run_dir: Path
    """The run's folder."""
    message: str = ""
    """For failures: the error and the last lines of ``run.log``."""

    @property
    def ok(self) -> bool:
        """Whether the run is finished (now or before)."""
        return self.status in ("done", "skipped")


def run_state(run_dir: Path) -> str:
    """What an invocation would do with a run folder: ``skip`` (DONE), ``resume`` (a method-owned
    file such as a checkpoint is present), ``rerun`` (failed before, nothing to resume) or ``run``.
    """
    if (run_dir / DONE).is_file():
        return "skip"
    if not run_dir.is_dir():
        return "run"
    if any(p.name not in SUITE_FILES and not p.name.endswith(".tmp") for p in run_dir.iterdir()):
        return "resume"
    if (run_dir / FAILED).is_file():
        return "rerun"
    return "run"


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' if missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def wandb_config(spec: RunSpec, options: RunOptions) -> dict[str, Any]:
    """The W&B run config of the suites contract (also the body of ``config.yml``)."""
    commit, dirty = git_state()
    return {
        "suite": spec.suite,
        "run_id": spec.run_id,
        "env": spec.env,
        "method": spec.method,
        "seed": spec.seed,
        "scale": spec.scale,
        "budget": {
            "total_env_steps": spec.budget.total_env_steps,
            "eval_every": spec.budget.eval_every,
            "eval_episodes": spec.budget.eval_episodes,
        },
        "method_config": dict(spec.method_config),
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": package_versions(),
        "command": options.command,
        "manifest": spec.manifest,
        "cpus": spec.cpus,
        "target": spec.target,
        "gpus": spec.gpus,
        "base_method": spec.base_method or spec.method,
        "variant": spec.variant,
    }


def make_tracker(spec: RunSpec, options: RunOptions, config: dict[str, Any]) -> WandbTracker:
    """The W&B tracker of ``spec``'s run, named and tagged per the suites contract."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    tags = [spec.env, spec.method] + (["scaled"] if spec.scaled else [])
    return WandbTracker(
        options.run_dir(spec),
        wandb_id=spec.wandb_id,
        project=options.wandb_project,
        group=spec.suite,
        job_type=spec.method,
        name=f"{spec.env}__{spec.method}__{spec.seed}__{stamp}",
        tags=tags,
        config=config,
        mode=ModeDecision(options.wandb_mode, options.wandb_mode_reason),
        init_timeout_s=options.init_timeout_s,
        progress_extra={
            "run_id": spec.run_id,
            "total_env_steps": spec.budget.total_env_steps,
            "started": time.time(),
        },
    )


def worker_command(run_dir: Path) -> list[str]:
    """The command that runs the run in ``run_dir`` alone (used by the local executor)."""
    return [sys.executable, "-m", "suites.runner", str(run_dir / SPEC_FILE)]


def write_spec(spec: RunSpec, options: RunOptions) -> Path:
    """Create the run folder and write ``run_spec.json`` (what a worker needs); returns the dir."""
    run_dir = options.run_dir(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / SPEC_FILE, {"spec": spec.to_dict(), "options": options.to_dict()})
    return run_dir


def execute(
    spec: RunSpec,
    options: RunOptions,
    wrap_tracker: Callable[[Tracker], Tracker] | None = None,
) -> RunResult:
    """Run ``spec`` to completion in this process.

    ``wrap_tracker`` (optional) wraps the W&B tracker before the method gets it, e.g. the Optuna
    tuner's wrapper that reports each evaluation to its trial (an exception it raises fails the
    run like any other).

    Returns ``skipped`` if DONE exists, ``done`` or ``failed`` (with FAILED written). A
    KeyboardInterrupt (Ctrl-C, or SIGTERM in a worker) finishes W&B with code 130, writes no
    DONE, and propagates.
    """
    import torch

    from mbmpo.envs import get_env
    from mbmpo.protocols import Budget
    from suites.registry import import_target

    run_dir = options.run_dir(spec)
    if (run_dir / DONE).is_file():
        return RunResult(spec.run_id, "skipped", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"=== {spec.run_id}: attempt started {started}", flush=True)
    torch.set_num_threads(spec.cpus)
    (run_dir / COMMAND_FILE).write_text(
        f"# suite command\n{options.command}\n"
        f"# this run alone\n{shlex.join(worker_command(run_dir))}\n"
    )
    config = wandb_config(spec, options)
    tracker = make_tracker(spec, options, config)

    def write_config() -> None:
        wandb_info = {
            "id": spec.wandb_id,
            "project": options.wandb_project,
            "group": spec.suite,
            "name": tracker.name,
            "requested_mode": options.wandb_mode,
            "mode_reason": options.wandb_mode_reason,
            "mode": tracker.mode,
            "fallback": tracker.fallback_reason,
        }
        write_yaml(run_dir / CONFIG_FILE, {**config, "wandb": wandb_info})

    try:
        write_config()  # before W&B starts, so a W&B failure still leaves the config
        tracker.start()
        write_config()  # with the mode in effect (after a possible fallback)
        method_cls = import_target(spec.target)
        method = method_cls(
            get_env(spec.env),
            spec.seed,
            dict(spec.method_config),
            tracker if wrap_tracker is None else wrap_tracker(tracker),
            run_dir,
            device=options.device,
        )
        budget = Budget(
            total_env_steps=spec.budget.total_env_steps,
            eval_every=spec.budget.eval_every,
            eval_episodes=spec.budget.eval_episodes,
        )
        summary = method.train(budget)
        tracker.summary(
            {
                "final/env_steps": summary.env_steps,
                "final/return": summary.final_return,
                "final/wall_s": summary.wall_s,
                **{f"final/{k}": v for k, v in summary.extra.items()},
            }
        )
        tracker.finish(EXIT_DONE)
    except KeyboardInterrupt:
        print(f"=== {spec.run_id}: interrupted; rerun the suite to resume", flush=True)
        _finish_quietly(tracker, EXIT_INTERRUPTED)
        raise
    except BaseException as exc:
        trace = traceback.format_exc()
        print(trace, file=sys.stderr, flush=True)
        (run_dir / FAILED).write_text(trace)
        _finish_quietly(tracker, EXIT_FAILED)
        return RunResult(spec.run_id, "failed", run_dir, f"{type(exc).__name__}: {exc}")
    write_json(
        run_dir / DONE,
        {
            "run_id": spec.run_id,
            "env_steps": summary.env_steps,
            "final_return": summary.final_return,
            "wall_s": summary.wall_s,
            "extra": dict(summary.extra),
            "wandb_id": spec.wandb_id,
            "wandb_mode": tracker.mode,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    (run_dir / FAILED).unlink(missing_ok=True)
    print(f"=== {spec.run_id}: done ({summary.env_steps} env steps)", flush=True)
    return RunResult(spec.run_id, "done", run_dir)


def _finish_quietly(tracker: WandbTracker, exit_code: int) -> None:
    try:
        tracker.finish(exit_code)
    except Exception:  # W&B trouble while already failing must not hide the first error
        print(f"W&B finish failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """First SIGINT/SIGTERM: stop training; later ones are ignored so W&B can finish cleanly
    (the terminal's Ctrl-C and the executor's SIGTERM usually both arrive)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Worker entry point: run the spec in ``run_spec.json``; exit 0 done, 1 failed, 130 stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m suites.runner",
        description="Run one run of a suite from its run_spec.json (written by the executor).",
    )
    parser.add_argument("spec_file", type=Path, help="path of a run folder's run_spec.json")
    args = parser.parse_args(argv)
    data = json.loads(args.spec_file.read_text())
    spec = RunSpec.from_dict(data["spec"])
    options = RunOptions.from_dict(data["options"])
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # keep nohup-style ignoring
        signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        result = execute(spec, options)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_DONE if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
