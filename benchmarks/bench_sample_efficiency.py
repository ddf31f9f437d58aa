"""MB-MPO at the paper's defaults for a number of real steps: the sample-efficiency curve.

Appends one CSV row per iteration, as it goes: ``env_steps, eval_return_mean, eval_return_std,
post_update_return, wall_s, iteration``, then the iteration's seconds per phase (``iteration_s,
sampling_s, eval_s, model_fit_s, meta_s``) and its model fit (``model_epochs_mean``,
``model_val_loss``), so one run gives both the curve and the time per iteration along it. The run
checkpoints into ``--run-dir`` every iteration; launching the same command again resumes it (rows
logged after the last checkpoint are dropped from the CSV first, so the file never holds an
iteration twice).

    .venv/bin/python benchmarks/bench_sample_efficiency.py --env halfcheetah --steps 100000 --seed 0

The paper reads about 550 (HalfCheetah) and 650 (Hopper) at 100k real steps (reference.md s.1).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from mbmpo.algo import MBMPO
from mbmpo.checkpoint import load_checkpoint
from mbmpo.envs import get_env
from mbmpo.protocols import Budget, MemoryTracker

PHASE_COLUMNS = (
    ("iteration_s", "time/iteration_s"),
    ("sampling_s", "time/sampling_s"),
    ("eval_s", "time/eval_s"),
    ("model_fit_s", "time/model_fit_s"),
    ("meta_s", "time/meta_s"),
    ("model_epochs_mean", "model/epochs_mean"),
)
"""(CSV column, logged metric) pairs written rounded to 0.1."""

FIELDS = (
    "env_steps",
    "eval_return_mean",
    "eval_return_std",
    "post_update_return",
    "wall_s",
    "iteration",
    *(col for col, _ in PHASE_COLUMNS),
    "model_val_loss",
)


class CsvTracker(MemoryTracker):
    """Appends each iteration's row to a CSV file (flushed at once) and echoes it."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        super().log(metrics, step)
        row = {
            "env_steps": int(step),
            "eval_return_mean": metrics.get("eval/return_mean", math.nan),
            "eval_return_std": metrics.get("eval/return_std", math.nan),
            "post_update_return": metrics.get("mbmpo/post_update_return", math.nan),
            "wall_s": round(metrics.get("time/wall_s", math.nan), 1),
            "iteration": int(metrics.get("iteration", -1)),
        }
        for col, key in PHASE_COLUMNS:
            row[col] = round(metrics.get(key, math.nan), 1)
        row["model_val_loss"] = metrics.get("model/val_loss", math.nan)
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def drop_rows_after(path: Path, env_steps: int) -> None:
    """Keep only CSV rows with ``env_steps <= env_steps`` (those covered by the checkpoint)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["env_steps"]) <= env_steps]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--env", default="halfcheetah")
    ap.add_argument("--steps", type=int, default=100_000, help="real env steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument(
        "--config",
        default="{}",
        help='JSON overrides of MBMPOConfig (smoke runs), e.g. {"meta_steps": 2}',
    )
    ap.add_argument(
        "--run-dir", default=None, help="default results/sample_efficiency/<env>_s<seed>"
    )
    ap.add_argument("--csv", default=None, help="default <run-dir>/returns.csv")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir or f"results/sample_efficiency/{args.env}_s{args.seed}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    csv_path = Path(args.csv).resolve() if args.csv else run_dir / "returns.csv"
    state = load_checkpoint(run_dir)
    drop_rows_after(csv_path, int(state["env_steps"]) if state is not None else -1)
    if state is not None:
        print(f"resuming {run_dir} at {state['env_steps']} env steps", flush=True)
    os.chdir(run_dir)  # MUJOCO_LOG.TXT lands here
    overrides = json.loads(args.config)
    tracker = CsvTracker(csv_path)
    method = MBMPO(get_env(args.env), args.seed, overrides, tracker, run_dir, args.device)
    summary = method.train(
        Budget(total_env_steps=args.steps, eval_every=1, eval_episodes=args.eval_episodes)
    )
    method.close()
    print(f"done: {summary}")


if __name__ == "__main__":
    main()
