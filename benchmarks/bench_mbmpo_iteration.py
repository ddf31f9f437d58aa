"""Seconds per MB-MPO iteration at the paper's defaults, split by phase.

Runs a few iterations of MB-MPO (paper defaults unless overridden) and prints, per iteration,
real sampling, evaluation, model fitting and meta-step time (the meta steps split into imagined
rollouts and policy optimisation), and ``cpu_s``, the process CPU seconds of the iteration (all
threads): on a machine shared with other jobs wall times inflate, CPU seconds much less.
``--prefill N`` first puts N uniform-random real transitions in the buffer, to measure the cost at
a larger buffer (model fitting grows with it), e.g. 100000.
``--meta-steps`` below 30 gives a quicker estimate (the per-meta-step time is printed too).

    .venv/bin/python benchmarks/bench_mbmpo_iteration.py --env halfcheetah --iterations 2
    .venv/bin/python benchmarks/bench_mbmpo_iteration.py --prefill 95000 --iterations 2
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from mbmpo.algo import MBMPO
from mbmpo.envs import get_env
from mbmpo.protocols import Budget, MemoryTracker
from mbmpo.rollouts import RealSampler

COLUMNS = (
    ("env_steps", "env_steps", "{:>9.0f}"),
    ("sample_s", "time/sampling_s", "{:>8.1f}"),
    ("eval_s", "time/eval_s", "{:>7.1f}"),
    ("fit_s", "time/model_fit_s", "{:>7.1f}"),
    ("epochs", "model/epochs_mean", "{:>6.0f}"),
    ("meta_s", "time/meta_s", "{:>7.1f}"),
    ("imagine_s", "time/imagine_s", "{:>9.1f}"),
    ("popt_s", "time/policy_opt_s", "{:>7.1f}"),
    ("iter_s", "time/iteration_s", "{:>7.1f}"),
    ("accept", "train/step_accepted", "{:>6.2f}"),
    ("eval_ret", "eval/return_mean", "{:>9.1f}"),
)


class PrintingTracker(MemoryTracker):
    """Keeps rows and prints each as a table line."""

    def __init__(self, buffer_size: Callable[[], int], meta_steps: int) -> None:
        super().__init__()
        self.buffer_size = buffer_size
        self.meta_steps = meta_steps
        print(
            " ".join(f"{name:>9}" for name, _, _ in COLUMNS),
            f"{'buffer':>8}",
            "meta_step_s",
            "cpu_s",
            flush=True,
        )
        self._cpu = time.process_time()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        super().log(metrics, step)
        cells = [
            fmt.format(metrics[key]) if key in metrics else f"{'-':>9}" for _, key, fmt in COLUMNS
        ]
        per_step = metrics.get("time/meta_s", math.nan) / self.meta_steps
        cpu = time.process_time()
        print(
            " ".join(f"{c:>9}" for c in cells),
            f"{self.buffer_size():>8}",
            f"{per_step:>11.2f}",
            f"{cpu - self._cpu:>5.0f}",
            flush=True,
        )
        self._cpu = cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--env", default="halfcheetah")
    ap.add_argument("--iterations", type=int, default=2, help="full iterations (fit + meta)")
    ap.add_argument("--prefill", type=int, default=0, help="random transitions added first")
    ap.add_argument("--meta-steps", type=int, default=30)
    ap.add_argument(
        "--model-max-epochs", type=int, default=None, help="cap on epochs per fit (paper 500)"
    )
    ap.add_argument(
        "--model-max-steps",
        type=int,
        default=None,
        help="Adam-step budget per fit, in whole epochs (model_max_steps; paper: none)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--run-dir", default="results/bench_mbmpo_iteration")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # always a fresh run
    run_dir.mkdir(parents=True)
    os.chdir(run_dir)  # MUJOCO_LOG.TXT lands here
    env = get_env(args.env)
    config: dict[str, int] = {"meta_steps": args.meta_steps}
    if args.model_max_epochs is not None:
        config["model_max_epochs"] = args.model_max_epochs
    if args.model_max_steps is not None:
        config["model_max_steps"] = args.model_max_steps
    m_epochs = args.model_max_epochs or 500
    print(
        f"MB-MPO iteration benchmark: env={args.env} threads={args.threads} device={args.device} "
        f"meta_steps={args.meta_steps} model_max_epochs={m_epochs} "
        f"model_max_steps={args.model_max_steps} prefill={args.prefill} torch={torch.__version__} "
        f"cpu={platform.processor() or platform.machine()} cores={os.cpu_count()}",
        flush=True,
    )
    holder: dict[str, MBMPO] = {}
    tracker = PrintingTracker(lambda: len(holder["m"].loop.buffer), args.meta_steps)
    m = MBMPO(env, args.seed, config, tracker, Path("."), device=args.device)
    holder["m"] = m
    if args.prefill > 0:
        t0 = time.perf_counter()
        sampler = RealSampler(env, math.ceil(args.prefill / env.horizon), seed=12345)
        batch = sampler.run(None)
        n = min(args.prefill, batch.num_steps)
        m.loop.buffer.add(batch.obs[:n], batch.act[:n], batch.next_obs[:n])
        sampler.close()
        print(f"prefilled {n} random transitions in {time.perf_counter() - t0:.1f} s")
    cfg = m.config
    total = cfg.initial_random_steps + args.iterations * cfg.meta_batch_size * env.horizon
    t0 = time.perf_counter()
    m.train(Budget(total_env_steps=total, eval_every=1, eval_episodes=5))
    wall = time.perf_counter() - t0
    full = [r for _, r in tracker.rows if "time/meta_s" in r]
    print(f"total wall {wall:.1f} s for {len(full)} full iterations (+ the final collection)")
    for key in ("time/sampling_s", "time/model_fit_s", "time/meta_s", "time/iteration_s"):
        vals = [r[key] for r in full]
        print(f"mean {key:<20} {sum(vals) / len(vals):8.1f} s")
    meta = sum(r["time/meta_s"] for r in full) / (len(full) * args.meta_steps)
    print(f"mean seconds per meta step {meta:.2f} -> {30 * meta:.1f} s for 30 meta steps")
    last = full[-1]
    epochs = last.get("model/epochs_mean", math.nan)
    if epochs and math.isfinite(epochs):
        per_epoch = last["time/model_fit_s"] / epochs
        print(
            f"last model fit: {per_epoch:.2f} s per epoch "
            f"({epochs:.0f} epochs) -> 40 epochs {40 * per_epoch:.0f} s, "
            f"500 epochs {500 * per_epoch:.0f} s"
        )
    m.close()


if __name__ == "__main__":
    main()
