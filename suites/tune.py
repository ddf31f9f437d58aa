"""``python -m suites.tune``: Optuna hyper-parameter tuning of any registered method on an env.

::

    python -m suites.tune --method ppo --env pendulum --trials 20 \\
        --storage journal:results/tune/ppo.log --steps 50000 --eval-every 5000

Each trial samples the method's search space (``suites/search_spaces/<method>.yaml``, or
``--search-space FILE``), merges it over the method's defaults (``suites/hyperparams``) and the
``--set`` values, and trains ONE run through the suite runner (:func:`suites.runner.execute`): its
own run folder ``<results-dir>/<study>/<env>__<method>__s<seed>__t<trial>/`` and its own W&B run
(group = study name, config ``variant`` = ``trial-<n>``). A tracker wrapper reports every
``eval/return_mean`` to the trial (``trial.report(value, env_steps)``) and raises
``optuna.TrialPruned`` when the pruner says so. The trial's value is the run's final evaluation
return (maximised).

Storage (``--storage``): ``journal:PATH`` (default ``journal:<results-dir>/<study>.log``; the fastest
for several processes on ONE host; not safe over NFS), ``sqlite:///PATH`` (one host), or an RDB URL
such as ``postgresql://user:pw@host/db`` for workers on several hosts. To tune in parallel, run the
same command in several terminals or hosts: they share the study and stop together once
``--trials`` trials have finished (complete or pruned).

At the end the best trial is printed and its parameters are written as YAML (``--out``, default
``<results-dir>/<study>_best.yaml``) in the manifest's ``method_overrides`` form, ready to paste
into a manifest.

Search-space file format (YAML, one entry per config key)::

    learning_rate: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
    n_epochs:      {type: int, low: 3, high: 20}            # optional: step, log
    gamma:         {type: categorical, choices: [0.98, 0.99, 0.995]}
    policy_hidden: {type: categorical, choices: [[32, 32], [64, 64]]}  # any YAML values
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mbmpo.protocols import EVAL_RETURN_MEAN, Budget, Tracker
from suites import registry
from suites.cli_types import positive_int
from suites.manifest import ManifestError, RunSpec, check_method_configs
from suites.runner import DONE, FAILED, RunOptions, execute
from suites.tracking import DEFAULT_PROJECT, MODES, resolve_mode
from suites.yaml_io import load_yaml

SEARCH_SPACES_DIR = Path(__file__).resolve().parent / "search_spaces"
"""Where the per-method search spaces live."""
KINDS = ("float", "int", "categorical")
_KEYS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}
PRUNERS = ("median", "halving", "none")
PRUNED = "PRUNED"
"""File a pruned trial's run folder gets instead of ``FAILED``."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class SearchSpaceError(ValueError):
    """A search-space file is invalid; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class Param:
    """One tunable config key and its distribution."""

    name: str
    """Config key of the method."""
    kind: str
    """``float``, ``int`` or ``categorical``."""
    low: float = 0.0
    """Lower bound (float/int)."""
    high: float = 0.0
    """Upper bound, inclusive (float/int)."""
    log: bool = False
    """Sample on a log scale (float/int)."""
    step: float | None = None
    """Discretisation step (float/int), or ``None``."""
    choices: tuple[Any, ...] = ()
    """Values to choose from (categorical); any YAML values."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Param.kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError(f"Param {self.name}: categorical needs at least one choice")
        elif not self.low <= self.high:
            raise ValueError(f"Param {self.name}: low must be <= high, got {self.low}, {self.high}")
        elif self.log and self.low <= 0:
            raise ValueError(f"Param {self.name}: log scale needs low > 0, got {self.low}")
        elif self.log and self.step is not None:
            raise ValueError(f"Param {self.name}: log and step cannot be combined")

    def suggest(self, trial: Any) -> Any:
        """Sample this parameter for ``trial`` (an ``optuna.Trial``)."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        if all(c is None or isinstance(c, bool | int | float | str) for c in self.choices):
            return trial.suggest_categorical(self.name, list(self.choices))
        # lists/mappings: Optuna stores only plain values, so choose among their JSON texts
        texts = [json.dumps(c) for c in self.choices]
        return json.loads(trial.suggest_categorical(self.name, texts))

    def decode(self, value: Any) -> Any:
        """A stored trial parameter as the config value (undoes the JSON encoding)."""
        encoded = any(not isinstance(c, bool | int | float | str | None) for c in self.choices)
        if self.kind == "categorical" and isinstance(value, str) and encoded:
            return json.loads(value)
        return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_search_space(data: Any, path: Path) -> dict[str, Param]:
    """Validate a parsed search-space YAML (see the module docstring for the format).

    :raises SearchSpaceError: listing every problem with the file and key.
    """
    problems: list[str] = []
    params: dict[str, Param] = {}
    if not isinstance(data, dict) or not data:
        raise SearchSpaceError(f"invalid search space {path}: must be a non-empty mapping")
    for name, spec in data.items():
        if not isinstance(spec, dict):
            problems.append(f"{name}: must be a mapping with 'type', got {spec!r}")
            continue
        kind = spec.get("type")
        if kind not in KINDS:
            problems.append(f"{name}.type: must be one of {', '.join(KINDS)}, got {kind!r}")
            continue
        unknown = [k for k in spec if k not in _KEYS[kind]]
        if unknown:
            problems.append(f"{name}: unknown keys {unknown}; allowed: {', '.join(_KEYS[kind])}")
            continue
        try:
            if kind == "categorical":
                choices = spec.get("choices")
                if not isinstance(choices, list):
                    problems.append(f"{name}.choices: must be a list, got {choices!r}")
                    continue
                params[name] = Param(name, kind, choices=tuple(choices))
            else:
                low: Any = spec.get("low")
                high: Any = spec.get("high")
                if not (_number(low) and _number(high)):
                    problems.append(f"{name}: low and high must be numbers, got {low!r}, {high!r}")
                    continue
                if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
                    problems.append(f"{name}: int needs int low/high, got {low!r}, {high!r}")
                    continue
                log, step = spec.get("log", False), spec.get("step")
                if not isinstance(log, bool):
                    problems.append(f"{name}.log: must be true or false, got {log!r}")
                    continue
                if step is not None and not (_number(step) and step > 0):
                    problems.append(f"{name}.step: must be a number > 0, got {step!r}")
                    continue
                params[name] = Param(name, kind, low=low, high=high, log=log, step=step)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise SearchSpaceError(f"invalid search space {path}:\n{lines}")
    return params


def load_search_space(method: str, path: Path | None = None) -> dict[str, Param]:
    """The search space of ``method`` (from ``path`` or ``suites/search_spaces/<method>.yaml``).

    :raises SearchSpaceError: when the file is missing or invalid.
    """
    file = path or SEARCH_SPACES_DIR / f"{method}.yaml"
    if not file.is_file():
        have = sorted(p.stem for p in SEARCH_SPACES_DIR.glob("*.yaml"))
        raise SearchSpaceError(
            f"no search space {file} for method {method!r}; write one (see suites/tune.py) or "
            f"pass --search-space FILE; available: {', '.join(have) or '(none)'}"
        )
    try:
        data = load_yaml(file.read_text())
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"invalid search space {file}: not valid YAML: {exc}") from None
    return parse_search_space(data, file)


class TrialTracker:
    """A :class:`~mbmpo.protocols.Tracker` that forwards everything to the run's tracker and
    reports each ``eval/return_mean`` to the Optuna trial, raising ``optuna.TrialPruned`` when
    the trial should stop (after recording ``tune/pruned_at`` in the run's summary)."""

    def __init__(self, inner: Tracker, trial: Any) -> None:
        self.inner = inner
        self.trial = trial
        self.reported: list[tuple[int, float]] = []
        """``(env_steps, eval return)`` pairs reported to the trial."""
        self.pruned_at: int | None = None
        """Env steps at which the trial was pruned (``None``: not pruned)."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        import optuna

        self.inner.log(metrics, step)
        value = metrics.get(EVAL_RETURN_MEAN)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), int(step))
        self.reported.append((int(step), float(value)))
        if self.trial.should_prune():
            self.pruned_at = int(step)
            self.inner.summary({"tune/pruned": True, "tune/pruned_at": int(step)})
            raise optuna.TrialPruned(f"pruned at {step} env steps ({EVAL_RETURN_MEAN} {value:.4g})")

    def summary(self, values: Mapping[str, Any]) -> None:
        self.inner.summary(values)


@dataclass(frozen=True)
class TuneSetup:
    """Everything a trial needs besides its sampled parameters."""

    method: str
    """Method registry name."""
    env: str
    """Env registry name."""
    study_name: str
    """Optuna study name; also the W&B group and the results sub-folder."""
    space: Mapping[str, Param]
    """The search space."""
    fixed: Mapping[str, Any]
    """Config keys fixed for every trial (over the method's defaults)."""
    budget: Budget
    """Real env steps per trial and the evaluation schedule the pruner sees."""
    seed: int
    """Seed of every trial's run."""
    cpus: int
    """CPU threads per trial."""
    options: RunOptions
    """Results root, W&B mode and project of the runs."""

    def __post_init__(self) -> None:
        clash = sorted(set(self.space) & set(self.fixed))
        if clash:
            raise ValueError(f"--set fixes {clash}, which the search space also tunes")

    def spec(self, number: int, params: Mapping[str, Any]) -> RunSpec:
        """The run of trial ``number`` with the sampled ``params``."""
        config = {**registry.default_config(self.method), **self.fixed, **params}
        return RunSpec(
            suite=self.study_name,
            run_id=f"{self.env}__{self.method}__s{self.seed}__t{number:04d}",
            env=self.env,
            method=self.method,
            target=registry.method_target(self.method),
            seed=self.seed,
            budget=self.budget,
            scale=1.0,
            method_config=config,
            cpus=self.cpus,
            manifest="(suites.tune)",
            variant=f"trial-{number}",
        )


def make_objective(setup: TuneSetup) -> Callable[[Any], float]:
    """The Optuna objective: one run per trial, value = its final evaluation return."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        params = {name: p.suggest(trial) for name, p in setup.space.items()}
        spec = setup.spec(trial.number, params)
        run_dir = setup.options.run_dir(spec)
        if run_dir.exists():
            raise RuntimeError(
                f"{run_dir} already exists (a study of the same name whose storage was reset?); "
                "use another --study-name or --results-dir"
            )
        check_method_configs([spec])
        run_dir.mkdir(parents=True)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("wandb_id", spec.wandb_id)
        wrapper: dict[str, TrialTracker] = {}

        def wrap(tracker: Tracker) -> Tracker:
            wrapper["t"] = TrialTracker(tracker, trial)
            return wrapper["t"]

        with contextlib.chdir(run_dir):  # stray files (MUJOCO_LOG.TXT) land in the run folder
            result = execute(spec, setup.options, wrap_tracker=wrap)
        tracker = wrapper.get("t")
        if tracker is not None and tracker.pruned_at is not None:
            with contextlib.suppress(OSError):
                shutil.move(run_dir / FAILED, run_dir / PRUNED)
            raise optuna.TrialPruned(f"pruned at {tracker.pruned_at} env steps")
        if result.status != "done":
            raise RuntimeError(f"trial {trial.number} run failed ({run_dir}): {result.message}")
        return float(json.loads((run_dir / DONE).read_text())["final_return"])

    return objective


def make_storage(url: str) -> Any:
    """An Optuna storage from ``journal:PATH``, ``sqlite:///PATH`` or an RDB URL.

    :raises ValueError: for anything else.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("journal:"):
        path = Path(url[len("journal:") :]).expanduser()
        if not str(path):
            raise ValueError("--storage journal:PATH needs a path")
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" in url:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url)
    raise ValueError(
        f"--storage {url!r}: use journal:PATH, sqlite:///PATH or an RDB URL "
        "(postgresql://..., mysql://...)"
    )


def make_pruner(name: str, startup_trials: int, warmup_steps: int) -> Any:
    """``median`` (MedianPruner), ``halving`` (SuccessiveHalvingPruner) or ``none``."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_steps
        )
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; allowed: {', '.join(PRUNERS)}")


def finished_trials(study: Any) -> list[Any]:
    """Trials that count towards ``--trials``: complete or pruned."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def tune(
    setup: TuneSetup,
    storage: Any,
    n_trials: int,
    *,
    pruner: Any = None,
    sampler_seed: int | None = None,
) -> Any:
    """Run trials until the study has ``n_trials`` complete or pruned ones; returns the study.

    A failed trial (its run failed) is recorded as FAIL and does not stop the study.
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study = optuna.create_study(
        study_name=setup.study_name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        pruner=pruner,
        load_if_exists=True,
    )
    study.set_user_attr("method", setup.method)
    study.set_user_attr("env", setup.env)
    remaining = n_trials - len(finished_trials(study))
    if remaining > 0:
        study.optimize(
            make_objective(setup),
            n_trials=remaining,
            catch=(RuntimeError, ValueError),
            callbacks=[
                MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
            ],
        )
    return study


def best_overrides(study: Any, space: Mapping[str, Param], method: str) -> dict[str, Any]:
    """The best trial's parameters as a manifest ``method_overrides`` mapping."""
    params = {k: space[k].decode(v) if k in space else v for k, v in study.best_params.items()}
    return {"method_overrides": {method: {"config": params}}}


def write_best(path: Path, study: Any, setup: TuneSetup, storage_url: str) -> dict[str, Any]:
    """Write the best parameters as a manifest-override YAML (with a comment header)."""
    best = study.best_trial
    data = best_overrides(study, setup.space, setup.method)
    done = finished_trials(study)
    pruned = sum(1 for t in done if t.state.name == "PRUNED")
    header = (
        f"# Optuna study {setup.study_name!r} ({storage_url}): {setup.method} on {setup.env}, "
        f"{len(done)} finished trials ({pruned} pruned)\n"
        f"# best: trial {best.number}, final {EVAL_RETURN_MEAN} {best.value:.6g} after "
        f"{setup.budget.total_env_steps} env steps; run {best.user_attrs.get('run_dir', '?')}\n"
        f"# fixed for every trial (not included below): {json.dumps(dict(setup.fixed))}\n"
        f"# Paste under a manifest's method_overrides (all envs), or use it as\n"
        f"# run_overrides: {{{setup.env}/{setup.method}: {{config: ...}}}} for this env only.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    os.replace(tmp, path)
    return data


def _assignment(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"must look like KEY=VALUE, got {text!r}")
    return key.strip(), load_yaml(value)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from mbmpo.envs import list_envs

    parser = argparse.ArgumentParser(
        prog="python -m suites.tune",
        description="Optuna tuning of a registered method on an env: every trial is one suite "
        "run (own run folder and W&B run, group = study name) whose evaluations are reported to "
        "the trial for pruning. Several processes/hosts may run the same command on one storage.",
        epilog="example: python -m suites.tune --method ppo --env pendulum --trials 20 "
        "--storage journal:results/tune/ppo.log --steps 50000 --eval-every 5000",
    )
    parser.add_argument("--method", required=True, choices=registry.list_methods())
    parser.add_argument("--env", required=True, choices=list_envs())
    parser.add_argument("--trials", type=positive_int, default=20, help="finished trials (20)")
    parser.add_argument("--study-name", default=None, help="default: <method>-<env>")
    parser.add_argument(
        "--storage",
        default=None,
        help="journal:PATH (default journal:<results-dir>/<study>.log), sqlite:///PATH, or an RDB "
        "URL (postgresql://..., mysql://...) for workers on several hosts",
    )
    parser.add_argument("--search-space", type=Path, default=None, metavar="FILE")
    parser.add_argument(
        "--set",
        type=_assignment,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fix a config key for every trial (YAML value), e.g. --set n_envs=2",
    )
    parser.add_argument("--steps", type=positive_int, default=100_000, help="env steps per trial")
    parser.add_argument("--eval-every", type=positive_int, default=10_000, metavar="N")
    parser.add_argument("--eval-episodes", type=positive_int, default=5, metavar="N")
    parser.add_argument("--seed", type=int, default=0, help="seed of every trial's run (0)")
    parser.add_argument("--sampler-seed", type=int, default=None, help="TPE sampler seed")
    parser.add_argument("--pruner", choices=PRUNERS, default="median")
    parser.add_argument(
        "--pruner-startup-trials",
        type=int,
        default=5,
        metavar="N",
        help="median pruner: trials before pruning starts (5)",
    )
    parser.add_argument(
        "--pruner-warmup-steps",
        type=int,
        default=None,
        metavar="N",
        help="median pruner: no pruning at evaluations before this many env steps (default: "
        "--eval-every, so the untrained policy's evaluation at step 0 never prunes)",
    )
    parser.add_argument("--cpus", type=positive_int, default=1, help="CPU threads per trial (1)")
    parser.add_argument(
        "--results-dir", type=Path, default=Path("results/tune"), help="default results/tune"
    )
    parser.add_argument("--out", type=Path, default=None, help="best-params YAML")
    parser.add_argument("--wandb-mode", choices=MODES, default=None)
    parser.add_argument("--wandb-project", default=DEFAULT_PROJECT)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    study_name = args.study_name or f"{args.method}-{args.env}"
    results_root = args.results_dir.expanduser().resolve()
    storage_url = args.storage or f"journal:{results_root / (study_name + '.log')}"
    try:
        space = load_search_space(args.method, args.search_space)
        decision = resolve_mode(args.wandb_mode)
        setup = TuneSetup(
            method=args.method,
            env=args.env,
            study_name=study_name,
            space=space,
            fixed=dict(args.set),
            budget=Budget(args.steps, args.eval_every, args.eval_episodes),
            seed=args.seed,
            cpus=args.cpus,
            options=RunOptions(
                results_root=results_root,
                wandb_mode=decision.mode,
                wandb_mode_reason=decision.reason,
                wandb_project=args.wandb_project,
                command=shlex.join([Path(sys.executable).name, "-m", "suites.tune", *argv]),
            ),
        )
        storage = make_storage(storage_url)
        warmup = args.eval_every if args.pruner_warmup_steps is None else args.pruner_warmup_steps
        pruner = make_pruner(args.pruner, args.pruner_startup_trials, warmup)
        check_method_configs([setup.spec(0, {})])  # the fixed keys are valid for the method
    except (SearchSpaceError, ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"study {study_name} ({storage_url}): {args.method} on {args.env}, {args.trials} trials of "
        f"{args.steps} env steps; tuning {', '.join(space)}; runs in {results_root / study_name}"
    )
    try:
        study = tune(setup, storage, args.trials, pruner=pruner, sampler_seed=args.sampler_seed)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to continue the study", file=sys.stderr)
        return EXIT_INTERRUPTED
    done = finished_trials(study)
    if not any(t.state.name == "COMPLETE" for t in done):
        print("no trial completed: no best parameters", file=sys.stderr)
        return EXIT_FAILED
    out = args.out or results_root / f"{study_name}_best.yaml"
    data = write_best(out, study, setup, storage_url)
    best = study.best_trial
    print(f"best trial {best.number}: {EVAL_RETURN_MEAN} {best.value:.6g}")
    print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    print(out)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
