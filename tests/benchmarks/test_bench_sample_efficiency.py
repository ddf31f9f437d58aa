"""bench_sample_efficiency.py end to end on a tiny MB-MPO config: one CSV row per iteration with
the per-phase seconds, and a relaunch resumes without duplicating rows."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "meta_steps": 2,
    "initial_random_steps": 1000,
    "meta_batch_size": 2,
    "ensemble_size": 2,
    "imagined_trajectories": 5,
    "model_hidden_sizes": [32, 32],
    "model_max_steps": 30,
}


def _run(run_dir: Path, steps: int) -> list[dict[str, str]]:
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_sample_efficiency.py"),
        "--env",
        "pendulum",
        "--steps",
        str(steps),
        "--threads",
        "1",
        "--config",
        json.dumps(TINY),
        "--run-dir",
        str(run_dir),
    ]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, timeout=300)
    with open(run_dir / "returns.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_csv_rows_carry_phase_times_and_resume_appends(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    rows = _run(run_dir, 1400)  # 1000 random + one 400-step iteration (2 tasks x 200)
    assert [int(r["env_steps"]) for r in rows] == [1000, 1400]
    first = {k: float(v) for k, v in rows[0].items()}
    # times are rounded to 0.1 s, so a tiny fit may read 0.0: check they were filled in (not NaN)
    # and add up, within the rounding, to no more than the whole iteration
    assert all(math.isfinite(first[col]) and first[col] >= 0 for col in ("model_fit_s", "meta_s"))
    assert first["iteration_s"] >= first["model_fit_s"] + first["meta_s"] - 0.1
    # 800 train rows at batch 500: 2 steps per epoch, so the 30-step budget allows 15 epochs
    assert 1 <= first["model_epochs_mean"] <= 15
    rows = _run(run_dir, 1800)  # relaunch with a larger budget: resumes from the checkpoint
    assert [int(r["env_steps"]) for r in rows] == [1000, 1400, 1800]
