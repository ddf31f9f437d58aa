"""The tidy frame, the cache and the online entry point."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from analysis_fixtures import (
    ENVS,
    METHODS,
    MISSING,
    N_EVALS,
    RESUMED,
    SEEDS,
    SUITE,
    Runs,
    steps_for,
    value,
    wandb_id,
)

import analysis.load as load
from analysis.load import (
    TIDY_COLUMNS,
    NotASuiteRunWarning,
    TruncatedRunWarning,
    load_run_info,
    load_runs,
)


def test_tidy_frame_columns_and_every_value(wandb_runs: Runs, cache_dir: Path) -> None:
    df = load_runs(wandb_runs.suite_dir)
    assert list(df.columns) == TIDY_COLUMNS
    expected_runs = {
        f"{e}__{m}__s{s}" for e in ENVS for m in METHODS for s in SEEDS if (e, m, s) not in MISSING
    }
    assert set(df["run_id"]) == expected_runs
    assert set(df["suite"]) == {SUITE}
    assert df["seed"].dtype == np.int64 and df["env_steps"].dtype == np.int64
    assert set(df["scale"]) == {1.0}
    metrics = set(df["metric"])
    assert {"eval/return_mean", "eval/return_std", "eval/episodes", "time/wall_s"} <= metrics
    assert "mbmpo/post_update_return" in metrics
    assert not any(m.startswith("_") for m in metrics) and "env_steps" not in metrics
    ret = df[df["metric"] == "eval/return_mean"]
    for run_id, run in ret.groupby("run_id"):
        env, method, seed = run["env"].iloc[0], run["method"].iloc[0], int(run["seed"].iloc[0])
        assert run_id == f"{env}__{method}__s{seed}"
        assert run["env_steps"].tolist() == steps_for(
            seed
        )  # one row per step: resume de-duplicated
        expected = [value(env, method, seed, s) for s in steps_for(seed)]
        np.testing.assert_allclose(run["value"].to_numpy(), expected)
    # only mbmpo runs log their post-update return
    post = df[df["metric"] == "mbmpo/post_update_return"]
    assert set(post["method"]) == {"mbmpo"}
    assert len(df) == len(df.drop_duplicates(["run_id", "env_steps", "metric"]))


def test_resumed_run_keeps_latest_values(wandb_runs: Runs, cache_dir: Path) -> None:
    env, method, seed = RESUMED
    df = load_runs(wandb_runs.suite_dir)
    run = df[(df["run_id"] == f"{env}__{method}__s{seed}") & (df["metric"] == "eval/return_mean")]
    assert len(run) == N_EVALS + 1
    assert run["value"].max() < 1000.0  # the first segment's stale values were overwritten
    (info,) = [i for i in load_run_info(wandb_runs.suite_dir) if i.run_id == run["run_id"].iloc[0]]
    assert len(info.sources) == 2 and info.finished
    assert info.wandb_id == wandb_id(SUITE, info.run_id)


def test_suite_filter_any_depth_and_foreign_runs_warned(wandb_runs: Runs, cache_dir: Path) -> None:
    with pytest.warns(NotASuiteRunWarning, match="scratch1"):
        everything = load_runs(wandb_runs.root)
    assert set(everything["suite"]) == {SUITE, "mini-scaled", "fig5"}
    scaled = load_runs(wandb_runs.root, suite="mini-scaled")  # the foreign run is not in it
    assert set(scaled["run_id"]) == {"hopper__mbmpo__s0__x0.05", "hopper__mbmpo__s1__x0.05"}
    assert set(scaled["scale"]) == {0.05}


def test_run_info_has_config_versions_commit(wandb_runs: Runs, cache_dir: Path) -> None:
    infos = {i.run_id: i for i in load_run_info(wandb_runs.suite_dir)}
    info = infos["hopper__ppo__s0"]
    assert info.git_commit == "0123456789abcdef"
    assert info.versions["torch"] == "2.13.0"
    assert info.config["method_config"]["inner_lr"] == 0.001
    assert info.tags == ("hopper", "ppo") and info.finished and not info.truncated


def test_cache_skips_reader_and_invalidates_changed_file(
    wandb_runs: Runs, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    src = tmp_path / "copy"
    shutil.copytree(wandb_runs.suite_dir, src, symlinks=True)
    calls: list[Path] = []
    real_read = load.read_run

    def counting_read(path: Path):  # the real reader, counted
        calls.append(Path(path))
        return real_read(path)

    monkeypatch.setattr(load, "read_run", counting_read)
    first = load_runs(src)
    n_files = len(calls)
    assert n_files == len(list(src.rglob("run-*.wandb"))) - len(
        [p for p in src.rglob("run-*.wandb") if "latest-run" in p.parts]
    )
    assert any(cache_dir.iterdir())
    second = load_runs(src)
    assert len(calls) == n_files  # nothing re-read
    assert first.equals(second)
    # change one file (a resumed run appending): only it is re-read and its new rows appear
    target = next(p for p in calls if "hopper__ppo__s0" in str(p))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # simulates a rewrite; truncation is tolerated
    os.utime(target, ns=(1, 1))
    with pytest.warns(TruncatedRunWarning, match="hopper__ppo__s0"):
        third = load_runs(src)
    assert calls[n_files:] == [target]
    rows = third[(third["run_id"] == "hopper__ppo__s0") & (third["metric"] == "eval/return_mean")]
    assert 0 < len(rows) < N_EVALS + 1
    # the cached frame is reused and its warnings are raised again
    with pytest.warns(TruncatedRunWarning, match="hopper__ppo__s0"):
        fourth = load_runs(src)
    assert calls[n_files:] == [target] and fourth.equals(third)
    assert len(list(cache_dir.glob("frame-*.pkl"))) == 1  # one entry per folder and suite
    # no cache: always reads
    with pytest.warns(TruncatedRunWarning):
        load_runs(src, cache_dir=False)
    assert len(calls) == 2 * n_files + 1


def test_online_source_is_parsed_and_reaches_the_real_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert load.parse_source("wandb://ent/proj") == ("wandb", "ent/proj")
    assert load.parse_source("results/smoke") == ("dir", "results/smoke")
    with pytest.raises(ValueError, match="wandb://entity/project"):
        load.parse_source("wandb://only-entity")
    # the real wandb.Api without credentials: stops at the API boundary with a clear error
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no ~/.config/wandb credentials
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(RuntimeError, match=r"wandb://ent/proj.*wandb login"):
        load_runs("wandb://ent/proj", suite="smoke")


def test_missing_folder_is_a_clear_error(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder of runs"):
        load_runs(tmp_path / "nope")
