"""Optuna tuning through the suite runner, with the real journal file storage, real tiny PPO
trials on pendulum, real W&B offline runs and a real pruner."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from analysis.load import collect
from mbmpo.protocols import Budget
from suites.manifest import parse_manifest
from suites.runner import DONE, RunOptions
from suites.tune import (
    PRUNED,
    SEARCH_SPACES_DIR,
    SearchSpaceError,
    TuneSetup,
    load_search_space,
    main,
    make_storage,
    parse_search_space,
    tune,
)

TINY = ["--set", "n_steps=100", "--set", "batch_size=50", "--set", "normalize_obs=false"]
SPACE = {
    "learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "policy_hidden": {"type": "categorical", "choices": [[16], [32, 32]]},
}


def _space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def test_cli_runs_trials_on_a_journal_and_writes_a_usable_override(tmp_path: Path) -> None:
    results = tmp_path / "tune"
    journal = tmp_path / "journal" / "ppo.log"
    code = main(
        ["--method", "ppo", "--env", "pendulum", "--trials", "2", "--steps", "300"]
        + ["--eval-every", "100", "--eval-episodes", "1", "--sampler-seed", "0"]
        + ["--search-space", str(_space_file(tmp_path)), "--storage", f"journal:{journal}"]
        + ["--results-dir", str(results), "--pruner", "none", *TINY]
    )
    assert code == 0
    assert journal.is_file()

    study = optuna.load_study(study_name="ppo-pendulum", storage=make_storage(f"journal:{journal}"))
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    runs = {info.run_id: (info, history) for info, history in collect(results, cache_dir=None)}
    for trial in trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir.parent == results / "ppo-pendulum" and (run_dir / DONE).is_file()
        info, history = runs[run_dir.name]
        assert info.suite == "ppo-pendulum"  # W&B group = study name
        assert info.config["variant"] == f"trial-{trial.number}"
        assert info.config["method_config"]["learning_rate"] == trial.params["learning_rate"]
        logged = {
            int(row["env_steps"]): row["eval/return_mean"]
            for row in history
            if "eval/return_mean" in row
        }
        assert logged == trial.intermediate_values  # every evaluation reported to the trial
        assert trial.value == logged[max(logged)]  # value = the final evaluation return

    best = yaml.safe_load((results / "ppo-pendulum_best.yaml").read_text())
    params = best["method_overrides"]["ppo"]["config"]
    assert params["learning_rate"] == study.best_params["learning_rate"]
    assert params["policy_hidden"] in ([16], [32, 32])  # decoded back from Optuna's JSON text
    manifest = parse_manifest(
        {
            "methods": ["ppo"],
            "envs": ["pendulum"],
            "seeds": 1,
            "budget": {"total_env_steps": 1000, "eval_every": 500},
            **best,
        },
        tmp_path / "with_best.yaml",
    )
    (spec,) = manifest.expand()
    assert spec.method_config["learning_rate"] == params["learning_rate"]
    assert spec.method_config["policy_hidden"] == params["policy_hidden"]


def test_pruned_trial_stops_its_run_and_is_recorded(tmp_path: Path) -> None:
    results = tmp_path / "tune"
    setup = TuneSetup(
        method="ppo",
        env="pendulum",
        study_name="prune",
        space=parse_search_space(SPACE, tmp_path / "space.yaml"),
        fixed={"n_steps": 100, "batch_size": 50, "normalize_obs": False},
        budget=Budget(total_env_steps=400, eval_every=100, eval_episodes=1),
        seed=0,
        cpus=1,
        options=RunOptions(results_root=results.resolve(), wandb_mode="offline"),
    )
    # pendulum returns are negative: a threshold above them prunes at the first report after
    # the warm-up, i.e. at the evaluation at 100 env steps
    pruner = optuna.pruners.ThresholdPruner(lower=0.0, n_warmup_steps=100)
    study = tune(
        setup, make_storage(f"journal:{tmp_path / 'p.log'}"), 1, pruner=pruner, sampler_seed=1
    )
    (trial,) = study.get_trials()
    assert trial.state == TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [0, 100]
    run_dir = Path(trial.user_attrs["run_dir"])
    assert (run_dir / PRUNED).is_file() and not (run_dir / DONE).exists()
    ((info, history),) = collect(results, cache_dir=None)
    steps = [int(row["env_steps"]) for row in history if "eval/return_mean" in row]
    assert steps == [0, 100]  # the run stopped where it was pruned
    assert info.summary["tune/pruned_at"] == 100
    assert not info.finished  # W&B marks the pruned run as not finished cleanly


def test_shipped_search_spaces_load() -> None:
    for path in sorted(SEARCH_SPACES_DIR.glob("*.yaml")):
        assert load_search_space(path.stem), path


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"lr": {"type": "uniform", "low": 0, "high": 1}}, ["lr.type", "float, int, categorical"]),
        ({"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, ["lr", "low > 0"]),
        ({"lr": {"type": "float", "low": 1.0, "high": 0.5}}, ["lr", "low must be <= high"]),
        ({"n": {"type": "int", "low": 1.5, "high": 3}}, ["n", "int low/high"]),
        ({"c": {"type": "categorical", "choices": 3}}, ["c.choices", "list"]),
        ({"c": {"type": "categorical", "choices": [1], "low": 0}}, ["c", "allowed: type, choices"]),
        ({"x": 0.5}, ["x", "mapping"]),
    ],
)
def test_bad_search_space_names_file_and_key(
    tmp_path: Path, entry: dict[str, object], words: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    with pytest.raises(SearchSpaceError) as info:
        parse_search_space(entry, path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_cli_rejects_a_fixed_key_that_is_also_tuned(tmp_path: Path) -> None:
    code = main(
        ["--method", "ppo", "--env", "pendulum", "--search-space", str(_space_file(tmp_path))]
        + ["--set", "learning_rate=0.1", "--results-dir", str(tmp_path / "r")]
    )
    assert code == 2
    assert not (tmp_path / "r" / "ppo-pendulum").exists()
