"""bench_sample_efficiency.py end to end on a tiny MB-MPO config: one CSV row per iteration with
the per-phase seconds, and a relaunch resumes without duplicating rows."""

from __future__ import annotations

import csv
import json
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
    first = rows[0]
    assert float(first["model_fit_s"]) > 0 and float(first["meta_s"]) > 0
    # 800 train rows at batch 500: 2 steps per epoch, so the 30-step budget allows 15 epochs
    assert float(first["model_epochs_mean"]) <= 15
    assert float(first["iteration_s"]) >= float(first["model_fit_s"]) + float(first["meta_s"])
    rows = _run(run_dir, 1800)  # relaunch with a larger budget: resumes from the checkpoint
    assert [int(r["env_steps"]) for r in rows] == [1000, 1400, 1800]
