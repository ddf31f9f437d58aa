"""MB-MPC planning speed on HalfCheetah: actions per second, next to the matmul FLOP rate.

Setting (reference.md section 4): 1000 candidate sequences of length 10, a random member per
sequence and step, K = 5 dynamics models of (512, 512) with HalfCheetah's shapes (17 obs, 6 act)
and reward. One "action" is one real step's plan for one env: 10k model transitions. Planning is
timed for 1 env and for ``--envs`` envs planned together (the lock-step collection batch, 20).

FLOPs counted: the model's matmuls only, ``2 * (in * h1 + h1 * h2 + h2 * out)`` per transition
(``in = obs + act``). The reference rate, measured in the same run and interleaved with the
planning (so it sees the same machine load), is ``baddbmm [K, B, 512] x [K, 512, 512]`` with the
planner's per-member row count B (the hidden layer, 93 % of the model FLOPs), and one large square
matmul. The ensemble's weights are random, its normaliser fit on random-action HalfCheetah data
(speed does not depend on what the model has learnt).

Run: ``.venv/bin/python benchmarks/bench_mbmpc_planning.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from baselines.mbmpc import RandomShootingPlanner
from mbmpo.envs import get_env
from mbmpo.models import DynamicsEnsemble
from mbmpo.rollouts import RealSampler


def _times(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(min, median) wall seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out), statistics.median(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--ensemble", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--envs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="100 candidates, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.candidates, args.repeats = 100, 1
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    env = get_env("halfcheetah")
    gen = torch.Generator(device=dev).manual_seed(0)
    ens = DynamicsEnsemble(
        env.obs_dim,
        env.act_dim,
        ensemble_size=args.ensemble,
        hidden_sizes=(args.hidden, args.hidden),
        device=dev,
        generator=gen,
    )
    sampler = RealSampler(env, 2, seed=0)
    batch = sampler.run(None)
    sampler.close()
    ens.fit_normalizer(*(torch.as_tensor(x) for x in (batch.obs, batch.act, batch.next_obs)))
    planner = RandomShootingPlanner(env, args.candidates, args.horizon, 0.99, "random")
    obs_pool = torch.as_tensor(batch.obs[: max(args.envs, 1)], device=dev)

    h = args.hidden
    flops_per_transition = 2 * ((env.obs_dim + env.act_dim) * h + h * h + h * env.obs_dim)
    transitions_per_action = args.candidates * args.horizon
    gflop_per_action = flops_per_transition * transitions_per_action / 1e9
    print(
        f"MB-MPC planning, HalfCheetah ({env.obs_dim} obs, {env.act_dim} act): "
        f"{args.candidates} x {args.horizon} candidates, K = {args.ensemble} x ({h}, {h}), "
        f"threads = {args.threads}, device = {dev}"
    )
    print(
        f"model FLOPs per planned action: {gflop_per_action:.2f} GFLOP "
        f"({transitions_per_action} transitions x {flops_per_transition / 1e6:.3f} MFLOP)"
    )

    rows = []
    for m in (1, args.envs):
        obs = obs_pool[:m]
        t_min, t_med = _times(partial(planner.plan, ens, obs, gen), args.repeats)
        b = m * args.candidates // args.ensemble  # rows per member per planning step
        x = torch.randn(args.ensemble, b, h, device=dev)
        w = torch.randn(args.ensemble, h, h, device=dev)
        bias = torch.randn(args.ensemble, 1, h, device=dev)
        mm_min, _ = _times(partial(torch.baddbmm, bias, x, w), args.repeats)
        mm_rate = 2 * args.ensemble * b * h * h / mm_min / 1e9
        aps = m / t_min
        rows.append((m, t_min, t_med, aps, aps * gflop_per_action, mm_rate))
    n = 2048
    a_sq, b_sq = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    sq_min, _ = _times(lambda: a_sq @ b_sq, args.repeats)
    sq_rate = 2 * n**3 / sq_min / 1e9

    print(
        f"{'envs':>5} {'plan s (min)':>13} {'plan s (med)':>13} {'actions/s':>10} "
        f"{'model GFLOP/s':>14} {'baddbmm GFLOP/s':>16} {'% of baddbmm':>13}"
    )
    for m, t_min, t_med, aps, rate, mm_rate in rows:
        print(
            f"{m:>5d} {t_min:>13.4f} {t_med:>13.4f} {aps:>10.2f} {rate:>14.1f} {mm_rate:>16.1f} "
            f"{100 * rate / mm_rate:>12.0f}%"
        )
    print(f"square matmul {n} x {n}: {sq_rate:.1f} GFLOP/s")
    best = max(r[3] for r in rows)
    steps = 4000
    print(
        f"=> {steps} MPC steps per iteration take about {steps / best / 60:.1f} min of planning "
        f"at {best:.1f} actions/s; 50k real steps (~{int(np.ceil(46000 / steps))} MPC iterations) "
        f"about {46000 / best / 3600:.1f} h plus evaluation episodes"
    )


if __name__ == "__main__":
    main()
