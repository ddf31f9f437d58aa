"""Imagined-rollout throughput at the paper's sizes, next to plain matmul FLOP rates.

Paper sizes: 20 tasks x 50 trajectories x horizon 200, K = 5 members of (512, 512), a (32, 32)
Gaussian policy acting with per-task parameters, HalfCheetah's shapes (17 obs, 6 act) and reward,
"task" propagation (each member advances 200 rows per step).

FLOPs counted: the model's matmuls only, ``2 * (in * h1 + h1 * h2 + h2 * out)`` per member-row per
step (``in = obs + act``); the policy's matmuls (``2 * (obs * 32 + 32 * 32 + 32 * act)``, 0.6 % of
the model's) are printed separately and not counted in the headline rate.

The reference rates, measured in the same run and interleaved with the rollouts (so they see the
same machine load): ``baddbmm [K, B, 512] x [K, 512, 512]`` with the rollout's B (the hidden layer,
89 % of the model FLOPs), the model's three layers as bare ``baddbmm`` calls with no activation,
and one large square matmul.

Run: ``.venv/bin/python benchmarks/bench_imagined_rollouts.py`` (add ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from mbmpo.envs import get_env
from mbmpo.models import DynamicsEnsemble, EnsembleTrainer, ModelTrainerConfig
from mbmpo.policies.gaussian_mlp import GaussianMLPPolicy
from mbmpo.rollouts import imagine


def _best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(min, median) wall seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--trajectories", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=200)
    parser.add_argument("--ensemble", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--train-rows", type=int, default=10_000, help="also time one training epoch (0: skip)"
    )
    parser.add_argument("--quick", action="store_true", help="horizon 20, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.horizon, args.repeats = 20, 1
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    env = get_env("halfcheetah")
    t_, n_, h_, k = args.tasks, args.trajectories, args.horizon, args.ensemble
    hid = (args.hidden, args.hidden)
    obs_dim, act_dim = env.obs_dim, env.act_dim
    gen = torch.Generator(device=dev).manual_seed(0)
    ens = DynamicsEnsemble(obs_dim, act_dim, k, hid, device=dev, generator=gen)
    # non-trivial normalisers, as after a fit
    data_gen = torch.Generator(device=dev).manual_seed(1)
    obs = torch.randn(5000, obs_dim, generator=data_gen, device=dev)
    act = torch.rand(5000, act_dim, generator=data_gen, device=dev) * 2 - 1
    ens.fit_normalizer(
        obs, act, obs + 0.1 * torch.randn(5000, obs_dim, generator=data_gen, device=dev)
    )

    policy = GaussianMLPPolicy(obs_dim, act_dim).to(dev)
    params = {
        name: p.detach().expand(t_, *p.shape).clone() for name, p in policy.named_params().items()
    }
    start = torch.randn(t_, n_, obs_dim, generator=data_gen, device=dev)

    def act_fn(o: torch.Tensor) -> torch.Tensor:
        return policy.sample(o, params, generator=gen)

    def rollout(propagation: str = "task") -> None:
        imagine(ens, act_fn, start, h_, env, propagation, gen)
        sync()

    rows = t_ * n_
    steps = rows * h_
    b = rows // k
    sizes = [obs_dim + act_dim, *hid, obs_dim]
    model_flops_row = 2 * sum(i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    policy_sizes = [obs_dim, 32, 32, act_dim]
    policy_flops_row = 2 * sum(
        i * o for i, o in zip(policy_sizes[:-1], policy_sizes[1:], strict=True)
    )
    model_flops = model_flops_row * steps

    # reference kernels on the same shapes
    x_h = torch.randn(k, b, hid[0], device=dev)
    w_h = torch.randn(k, hid[0], hid[1], device=dev)
    bias_h = torch.randn(k, 1, hid[1], device=dev)
    frozen = ens.frozen()
    x_in = torch.randn(k, b, sizes[0], device=dev)

    def hidden_bmm() -> None:
        for _ in range(50):
            torch.baddbmm(bias_h, x_h, w_h)
        sync()

    def bare_layers() -> None:  # the model's three layers as bare baddbmm calls (no ReLU, no cat)
        for _ in range(50):
            x = x_in
            for w, bias in zip(frozen.weights, frozen.biases, strict=True):
                x = torch.baddbmm(bias, x, w)
        sync()

    def model_step() -> None:  # FrozenEnsemble.step as a rollout uses it
        o, a = x_in[..., :obs_dim].contiguous(), x_in[..., obs_dim:].contiguous()
        for _ in range(50):
            frozen.step(o, a)
        sync()

    big = torch.randn(2048, 2048, device=dev)

    def big_mm() -> None:
        for _ in range(5):
            big @ big
        sync()

    reps = args.repeats
    results: dict[str, list[float]] = {
        "rollout": [],
        "hidden_bmm": [],
        "bare_layers": [],
        "model_step": [],
        "big_mm": [],
    }
    for _ in range(reps):  # interleave, so every figure sees the same machine load
        results["rollout"].append(_best_time(rollout, 1)[0])
        results["hidden_bmm"].append(_best_time(hidden_bmm, 1)[0])
        results["bare_layers"].append(_best_time(bare_layers, 1)[0])
        results["model_step"].append(_best_time(model_step, 1)[0])
        results["big_mm"].append(_best_time(big_mm, 1)[0])
    best = {key: min(v) for key, v in results.items()}

    gf = 1e-9
    rollout_rate = model_flops / best["rollout"] * gf
    hidden_rate = 50 * 2 * k * b * hid[0] * hid[1] / best["hidden_bmm"] * gf
    bare_rate = 50 * model_flops_row * k * b / best["bare_layers"] * gf
    step_rate = 50 * model_flops_row * k * b / best["model_step"] * gf
    big_rate = 5 * 2 * 2048**3 / best["big_mm"] * gf

    print(f"device={dev} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(
        f"sizes: T={t_} tasks x N={n_} trajectories x H={h_} steps, K={k} members of {hid}, "
        f"obs={obs_dim} act={act_dim}, propagation=task ({b} rows per member per step)"
    )
    print(
        f"FLOPs per member-row-step: model {model_flops_row:,} (counted), policy {policy_flops_row:,} "
        f"(not counted, {100 * policy_flops_row / model_flops_row:.1f}% of the model's)"
    )
    print(
        f"best of {reps} (interleaved), seconds per run: "
        + ", ".join(f"{key} {v:.3f}" for key, v in best.items())
    )
    print(
        f"imagined rollout : {steps / best['rollout']:>12,.0f} steps/s  {rollout_rate:6.1f} GFLOP/s (model matmuls)"
    )
    print(
        f"model step only  : {50 * k * b / best['model_step']:>12,.0f} steps/s  {step_rate:6.1f} GFLOP/s"
    )
    print(f"bare 3 baddbmm   : {'':>12}          {bare_rate:6.1f} GFLOP/s")
    print(f"hidden baddbmm [{k},{b},{hid[0]}]x[{k},{hid[0]},{hid[1]}]: {hidden_rate:6.1f} GFLOP/s")
    print(f"plain matmul 2048x2048x2048: {big_rate:6.1f} GFLOP/s")
    print(
        f"rollout / hidden baddbmm = {100 * rollout_rate / hidden_rate:.0f}%   "
        f"rollout / bare layers = {100 * rollout_rate / bare_rate:.0f}%   "
        f"rollout / plain matmul = {100 * rollout_rate / big_rate:.0f}%"
    )
    # where the rest of a rollout step goes (per step, best of `repeats`)
    s0 = start
    a0 = act_fn(s0)
    s1 = s0 + 0.01
    parts = {
        "policy sample": lambda: [act_fn(s0) for _ in range(50)],
        "reward fn": lambda: [env.reward(s0, a0, s1) for _ in range(50)],
    }
    for name, fn in parts.items():
        t = _best_time(lambda f=fn: (f(), sync()), reps)[0] / 50
        print(f"  per step: {name:14s} {1e3 * t:7.3f} ms")
    t = _best_time(lambda: (ens.frozen(), sync()), reps)[0]
    print(f"  per rollout: frozen() (weight norm + output fold, once) {1e3 * t:7.3f} ms")
    print(
        f"  per step: model pass {1e3 * best['model_step'] / 50:7.3f} ms; whole rollout step "
        f"{1e3 * best['rollout'] / h_:7.3f} ms"
    )
    # the other propagation modes, best of `repeats` ("mean" does K model passes, all counted)
    for prop in ("fixed", "random", "mean"):
        t = _best_time(lambda p=prop: rollout(p), reps)[0]
        factor = k if prop == "mean" else 1
        print(
            f"propagation={prop:6s}: {steps / t:>12,.0f} steps/s  "
            f"{factor * model_flops / t * gf:6.1f} GFLOP/s"
        )
    if args.train_rows > 0:
        _bench_training(ens, args.train_rows, sync)


def _bench_training(ens: DynamicsEnsemble, rows: int, sync: Callable[[], None]) -> None:
    """One epoch of the real trainer (batch 500, masked Adam, validation pass) on ``rows`` rows."""
    dev = ens.device
    k = ens.ensemble_size
    gen = torch.Generator(device=dev).manual_seed(2)
    cfg = ModelTrainerConfig(max_epochs=1, early_stopping=False)
    trainer = EnsembleTrainer(ens, cfg, gen)
    x = torch.randn(rows, ens.obs_dim + ens.act_dim, generator=gen, device=dev)
    y = torch.randn(rows, ens.obs_dim, generator=gen, device=dev)
    is_val = torch.rand(rows, k, generator=gen, device=dev) < 0.2
    trainer.fit_arrays(x, y, is_val)  # warm-up
    t0 = time.perf_counter()
    trainer.fit_arrays(x, y, is_val)
    sync()
    dt = time.perf_counter() - t0
    n_train = int((~is_val).sum(0).max())
    sizes = [ens.obs_dim + ens.act_dim, *ens.hidden_sizes, ens.obs_dim]
    flops_row = 2 * sum(i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    # forward + backward ~ 3x the forward matmuls; validation pass 1x
    flops = k * flops_row * (3 * n_train + (rows - n_train))
    print(
        f"training epoch   : {k * n_train / dt:>12,.0f} member-samples/s  {flops / dt * 1e-9:6.1f} "
        f"GFLOP/s (~3x forward for train rows + validation forward), {rows} rows, {dt:.2f} s"
    )


if __name__ == "__main__":
    main()
