"""ME-TRPO seconds per iteration at the Figure-2 defaults on HalfCheetah, by phase.

Runs the real method (``suites/hyperparams/me-trpo.yaml``: 4000 random steps, then 4000 real steps
per iteration with the current policy, K = 5 (512, 512) models refit on all data, 30 TRPO steps on
250 x 200 = 50k imagined steps each, random member per step) for ``--iterations`` iterations and
prints what the shared loop logged for each: real sampling, evaluation (5 episodes, not counted
as samples), model fit (and its epochs), imagined rollouts, TRPO, and the total. Iteration 0 fits
on 4000 transitions; iteration i on 4000 (i + 1), so the fit grows with the data while the policy
phase stays constant.

Imagined FLOPs per iteration (model matmuls only): 30 x 50k x 2 (in h1 + h1 h2 + h2 out), printed
with the achieved rate of the imagine phase.

Run: ``.venv/bin/python benchmarks/bench_metrpo_iteration.py`` (``--quick`` for a smoke run:
2 TRPO steps, 20 model epochs; ``--model-max-epochs N`` caps the fit, e.g. to separate its cost).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from baselines.metrpo import METRPO
from mbmpo.envs import get_env
from mbmpo.protocols import Budget, MemoryTracker
from suites.registry import default_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-max-epochs", type=int, default=None)
    parser.add_argument("--trpo-steps", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.model_max_epochs = args.model_max_epochs or 20
        args.trpo_steps = args.trpo_steps or 2
    torch.set_num_threads(args.threads)
    env = get_env("halfcheetah")
    cfg = default_config("me-trpo")
    if args.model_max_epochs is not None:
        cfg["model_max_epochs"] = args.model_max_epochs
    if args.trpo_steps is not None:
        cfg["trpo_steps"] = args.trpo_steps
    tracker = MemoryTracker()
    with tempfile.TemporaryDirectory() as run_dir:
        method = METRPO(env, 0, cfg, tracker, Path(run_dir), device=args.device)
        c = method.config
        total = c.initial_random_steps + (args.iterations - 1) * c.real_steps_per_iteration + 1
        method.train(Budget(total_env_steps=total, eval_every=c.real_steps_per_iteration))
        method.close()
    hid = c.model_hidden_sizes
    sizes = [env.obs_dim + env.act_dim, *hid, env.obs_dim]
    flops = 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    horizon = c.imagined_horizon or env.horizon
    imagined = c.trpo_steps * c.imagined_trajectories * horizon
    print(
        f"ME-TRPO on HalfCheetah, threads = {args.threads}, device = {args.device}: "
        f"K = {c.ensemble_size} x {hid}, {c.trpo_steps} TRPO steps x "
        f"{c.imagined_trajectories} x {horizon} imagined steps, model_max_epochs = "
        f"{c.model_max_epochs}"
    )
    print(
        f"{'iter':>4} {'data':>6} {'sampling':>9} {'eval':>7} {'model_fit':>10} {'epochs':>7} "
        f"{'imagine':>8} {'trpo':>7} {'total s':>8} {'imag GFLOP/s':>13}"
    )
    for step, row in tracker.rows:
        if "time/model_fit_s" not in row:
            continue  # the last row is only the final evaluation
        imag_s = row.get("time/imagine_s", float("nan"))
        print(
            f"{int(row['iteration']):>4d} {step:>6d} {row['time/sampling_s']:>9.1f} "
            f"{row.get('time/eval_s', 0.0):>7.1f} {row['time/model_fit_s']:>10.1f} "
            f"{row['model/epochs_mean']:>7.1f} {imag_s:>8.1f} {row.get('time/trpo_s', 0.0):>7.1f} "
            f"{row['time/iteration_s']:>8.1f} {imagined * flops / imag_s / 1e9:>13.1f}"
        )


if __name__ == "__main__":
    main()
