"""Fixtures: suite runs written by the REAL pinned wandb (0.31) in offline mode, laid out exactly as
the suites <-> analysis contract says (``<root>/<suite>/<run_id>/wandb/offline-run-*/run-<id>.wandb``).

Returns are linear in the real step so that every expected number (interpolated values, means, stds,
steps to a threshold) can be computed independently in the tests:
``value = SLOPE[env, method] * env_steps / 1000 + OFFSET[seed]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SUITE = "mini"
ENVS = ("halfcheetah", "hopper")
METHODS = ("mbmpo", "ppo")
SEEDS = (0, 1, 2)
MISSING = {("hopper", "ppo", 2)}  # this seed is never written: figures must warn about it
SLOPE = {
    ("halfcheetah", "mbmpo"): 10.0,
    ("halfcheetah", "ppo"): 2.0,
    ("hopper", "mbmpo"): 8.0,
    ("hopper", "ppo"): 3.0,
    ("halfcheetah-h1000", "mbmpo"): 6.0,
    ("halfcheetah-h1000", "mbmpo-noadapt"): 1.0,
}
OFFSET = {0: -1.0, 1: 0.0, 2: 4.0}
EVAL_EVERY = 5000
N_EVALS = 12  # evaluations at k * EVAL_EVERY + jitter, k = 0..N_EVALS
STALE = 1000.0  # added to the values the killed first segment logged past its last checkpoint
RESUMED = ("halfcheetah", "mbmpo", 0)  # written as two segments with overlapping steps
RESUME_AT = 6  # the second segment restarts at evaluation k = RESUME_AT (first went to k = 8)


def steps_for(seed: int) -> list[int]:
    """Seeds log at slightly different real steps (k = 0 is at step 0 for every seed)."""
    return [0] + [k * EVAL_EVERY + 10 * seed for k in range(1, N_EVALS + 1)]


def value(env: str, method: str, seed: int, step: float) -> float:
    return SLOPE[env, method] * step / 1000.0 + OFFSET[seed]


def wandb_id(suite: str, run_id: str) -> str:
    return f"{suite}-{run_id}".replace("_", "").replace(".", "")[:60].lower()


@dataclass(frozen=True)
class Runs:
    """Where the fixture wrote its runs."""

    root: Path
    """Results root: ``root/<suite>/<run_id>/...``."""
    suite_dir: Path
    """``root/mini``."""


def _write_run(
    root: Path,
    suite: str,
    env: str,
    method: str,
    seed: int,
    ks: range,
    *,
    scale: float = 1.0,
    method_config: dict[str, Any] | None = None,
    run_id: str | None = None,
    stale_after: int | None = None,
    exit_code: int = 0,
    extra_config: dict[str, Any] | None = None,
) -> None:
    import wandb

    run_id = run_id or f"{env}__{method}__s{seed}" + ("" if scale == 1.0 else f"__x{scale:g}")
    run_dir = root / suite / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "suite": suite,
        "run_id": run_id,
        "env": env,
        "method": method.split("-")[0],
        "seed": seed,
        "scale": scale,
        "budget": {
            "total_env_steps": N_EVALS * EVAL_EVERY,
            "eval_every": EVAL_EVERY,
            "eval_episodes": 5,
        },
        "method_config": method_config or {"inner_lr": 0.001, "hidden_sizes": [32, 32]},
        "git_commit": "0123456789abcdef",
        "versions": {"torch": "2.13.0", "wandb": wandb.__version__},
        "command": f"python -m suites.run {suite}",
        "manifest": f"suites/manifests/{suite}.yaml",
        **(extra_config or {}),
    }
    tags = [env, config["method"]] + (["scaled"] if scale != 1.0 else [])
    run = wandb.init(
        mode="offline",
        dir=str(run_dir),
        project="mbmpo-suite",
        group=suite,
        job_type=config["method"],
        name=f"{env}__{config['method']}__{seed}__20261125-000000",
        id=wandb_id(suite, run_id),
        resume="allow",
        tags=tags,
        config=config,
    )
    wandb.define_metric("*", step_metric="env_steps")
    steps = steps_for(seed)
    for k in ks:
        step = steps[k]
        ret = value(env, method, seed, step)
        if stale_after is not None and k > stale_after:
            ret += STALE
        row = {
            "eval/return_mean": ret,
            "eval/return_std": 1.0 + seed,
            "eval/episodes": 5,
            "time/wall_s": step / 100.0,
            "env_steps": step,
        }
        if method.startswith("mbmpo"):
            row["mbmpo/post_update_return"] = ret + 0.5
        wandb.log(row)
    run.summary["final_return"] = value(env, method, seed, steps[ks[-1]])
    run.finish(exit_code=exit_code)


@pytest.fixture(scope="session")
def wandb_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Suites ``mini`` (2 envs x 2 methods x 3 seeds, one seed missing, one resumed run),
    ``mini-scaled`` (scale 0.05) and ``fig5`` (halfcheetah-h1000, alpha 0.001 vs 0, 2 seeds)."""
    root = tmp_path_factory.mktemp("results")
    wb_home = tmp_path_factory.mktemp("wandb_home")
    saved = {
        k: os.environ.get(k) for k in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")
    }
    for key in saved:
        os.environ[key] = str(wb_home / key.lower())
    try:
        everything = range(0, N_EVALS + 1)
        for env in ENVS:
            for method in METHODS:
                for seed in SEEDS:
                    if (env, method, seed) in MISSING:
                        continue
                    if (env, method, seed) == RESUMED:
                        # first segment: killed after k = 8 (its values past k = RESUME_AT are stale)
                        _write_run(
                            root, SUITE, env, method, seed, range(0, 9),
                            stale_after=RESUME_AT - 1, exit_code=1,
                        )  # fmt: skip
                        _write_run(root, SUITE, env, method, seed, range(RESUME_AT, N_EVALS + 1))
                    else:
                        _write_run(root, SUITE, env, method, seed, everything)
        for seed in (0, 1):
            _write_run(root, "mini-scaled", "hopper", "mbmpo", seed, everything, scale=0.05)
            _write_run(
                root, "fig5", "halfcheetah-h1000", "mbmpo", seed, everything,
                method_config={"inner_lr": 0.001},
            )  # fmt: skip
            _write_run(
                root, "fig5", "halfcheetah-h1000", "mbmpo-noadapt", seed, everything,
                method_config={"inner_lr": 0.0},
                run_id=f"halfcheetah-h1000__mbmpo-noadapt__s{seed}",
            )  # fmt: skip
        # a foreign run without suite metadata (e.g. a scratch run) lives in the same tree
        import wandb

        scratch = root / "scratch"
        scratch.mkdir()
        run = wandb.init(mode="offline", dir=str(scratch), project="other", id="scratch1")
        wandb.log({"loss": 1.0})
        run.finish()
        # run.finish() can return before wandb-core has written the file's last block: shutting
        # the service down flushes every file (measured: 3 of 6 files were short without it)
        wandb.teardown()
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
    yield Runs(root=root, suite_dir=root / SUITE)


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh analysis cache for this test (also set as ``$MBMPO_ANALYSIS_CACHE``)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MBMPO_ANALYSIS_CACHE", str(path))
    return path
