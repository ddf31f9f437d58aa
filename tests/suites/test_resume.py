"""A suite run killed mid-way (SIGKILL of the whole process group: suite, worker and W&B service,
as a crash or an OOM kill would) resumes under the local executor when the same command is run
again, and its W&B history, read back from the offline files, holds every evaluation point
exactly once.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from analysis.load import collect, load_runs
from suites.journal import segment_files
from suites.manifest import load_manifest
from suites.runner import DONE, RunOptions, run_state

EVAL_EVERY = 200


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true")
    return env


def _rows(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "progress.json").read_text())["rows"])
    except (OSError, ValueError, KeyError):
        return 0


def _kill_after_checkpoint(cmd: list[str], cwd: Path, run_dir: Path, rows: int) -> None:
    """Start ``cmd`` in its own process group and SIGKILL the group once the run has logged
    ``rows`` rows (each row is logged after the checkpoint that covers it, or before the next)."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while _rows(run_dir) < rows:
            assert proc.poll() is None, "the suite ended before it could be killed"
            assert time.time() < deadline, "the run logged too few rows in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _eval_steps(history: list[dict[str, Any]]) -> list[int]:
    return [int(row["env_steps"]) for row in history if "eval/return_mean" in row]


CASES = {
    # SB3: evaluates at 0 and every 200 steps, checkpoints before handing each row to W&B
    "ppo": (
        {"n_steps": 100, "batch_size": 50, "normalize_obs": False},
        1400,
        lambda total: list(range(0, total + 1, EVAL_EVERY)),
    ),
    # MB-MPO (tiny): 200 random steps, then 2 pendulum episodes (400 steps) per iteration,
    # evaluated every iteration; checkpoints after logging each iteration's row
    "mbmpo": (
        {
            "meta_batch_size": 2,
            "ensemble_size": 2,
            "meta_steps": 1,
            "imagined_trajectories": 2,
            "imagined_horizon": 20,
            "model_hidden_sizes": [16, 16],
            "model_max_epochs": 3,
            "initial_random_steps": 200,
            "num_threads": 1,
        },
        2600,
        lambda total: list(range(200, total + 1, 400)),
    ),
}


@pytest.mark.parametrize("method", sorted(CASES))
def test_killed_run_resumes_without_duplicated_or_missing_points(
    method: str, tmp_path: Path, write_manifest
) -> None:
    config, total, schedule = CASES[method]
    manifest = write_manifest(
        {
            "name": "resume",
            "methods": [method],
            "envs": ["pendulum"],
            "seeds": [3],
            "budget": {"total_env_steps": total, "eval_every": EVAL_EVERY, "eval_episodes": 2},
            "method_overrides": {method: {"config": config}},
        }
    )
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "suites.run", str(manifest), "--results-dir", str(results)]
    cmd += ["--no-figure", "--jobs", "1"]
    spec = load_manifest(manifest).expand()[0]
    run_dir = RunOptions(results_root=results).run_dir(spec)

    _kill_after_checkpoint(cmd, tmp_path, run_dir, rows=3)
    assert not (run_dir / DONE).exists()
    assert run_state(run_dir) == "resume"  # a checkpoint is there
    dry = subprocess.run(
        [*cmd, "--dry-run"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert "resume 1" in dry.stdout, dry.stdout

    again = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert (run_dir / DONE).is_file()

    ((info, history),) = collect(results, cache_dir=None)
    expected = schedule(total)
    assert _eval_steps(history) == expected  # raw rows: nothing logged twice, nothing lost
    assert info.finished
    # the killed W&B segment and the resumed one, same W&B run id; the killed one is read too
    # when wandb-core flushed any of it before the kill (else only its file header exists)
    segments = segment_files(run_dir / "wandb", spec.wandb_id)
    assert len(segments) == 2
    assert {str(p) for p in info.sources} <= {str(p) for p in segments}
    replayed = "re-sent from history.jsonl" in (run_dir / "run.log").read_text()
    assert replayed
    steps = [int(row["env_steps"]) for row in history if "time/wall_s" in row]
    assert steps == sorted(set(steps))  # every logged row once, in order

    df = load_runs(results, cache_dir=None)
    curve = df[df["metric"] == "eval/return_mean"]
    assert curve["env_steps"].tolist() == expected


def test_journal_round_trip_torn_line_and_replay_selection(tmp_path: Path) -> None:
    from suites.journal import append_row, read_journal, row_key, rows_to_replay

    path = tmp_path / "history.jsonl"
    append_row(path, {"eval/return_mean": -1.5, "env_steps": 0}, 0)
    append_row(path, {"eval/return_mean": float("nan"), "x": 2.0, "env_steps": 200}, 200)
    append_row(path, {"x": 3.0, "env_steps": 400}, 400)
    with path.open("a") as fh:
        fh.write('{"step": 600, "row": {"x"')  # a write cut short by a kill
    rows = read_journal(path)
    assert [step for step, _ in rows] == [0, 200, 400]
    assert math.isnan(rows[1][1]["eval/return_mean"])
    assert row_key(200, rows[1][1]) == (200, ("eval/return_mean", "x"))
    assert row_key(200, {"_step": 3, "x": 1, "eval/return_mean": 0}) == row_key(200, rows[1][1])
    durable = {row_key(0, rows[0][1]), row_key(400, {"y": 1.0})}  # same step, other keys
    assert [step for step, _ in rows_to_replay(rows, durable)] == [200, 400]
    path.write_text(path.read_text().replace('"step": 200', '"stp": 200'))
    with pytest.raises(ValueError, match="line 2"):
        read_journal(path)
