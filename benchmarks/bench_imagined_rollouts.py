"""Imagined-rollout throughput at the paper's sizes, next to plain matmul FLOP rates.

Paper sizes: 20 tasks x 50 trajectories x horizon 200, K = 5 members of (512, 512), a (32, 32)
Gaussian policy acting with per-task parameters, HalfCheetah's shapes (17 obs, 6 act) and reward,
"task" propagation (each member advances 200 rows per step).

FLOPs counted: the model's matmuls only, ``2 * (in * h1 + h1 * h2 + h2 * out)`` per member-row per
step (``in = obs + act``); the policy's matmuls (``2 * (obs * 32 + 32 * 32 + 32 * act)``, 0.6 % of
the model's) are printed separately and not counted in the rates.

Reference kernels, measured in the same run and interleaved with the rollouts: ``baddbmm
[K, B, 512] x [K, 512, 512]`` with the rollout's B (the hidden layer, 93 % of the model FLOPs), the
model's three layers as bare ``baddbmm`` calls, one ``FrozenEnsemble.step`` (what a rollout step
runs), and one large square matmul.

Timing on a shared machine: every rollout step is timed on its own (the policy call marks the
start of each step) and every reference call too, so that both the best (least disturbed) and
the median per-unit times can be reported; ratios are given for both.

Run: ``.venv/bin/python benchmarks/bench_imagined_rollouts.py`` (``--quick`` for a smoke run).
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


def _per_call(fn: Callable[[], object], calls: int, sync: Callable[[], None]) -> list[float]:
    """Wall seconds of each of ``calls`` calls of ``fn`` (after one warm-up call)."""
    fn()
    sync()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--trajectories", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=200)
    parser.add_argument("--ensemble", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--train-rows", type=int, default=10_000, help="also time one training epoch (0: skip)"
    )
    parser.add_argument("--quick", action="store_true", help="horizon 20, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.horizon, args.repeats = 20, 1
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync: Callable[[], None] = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    env = get_env("halfcheetah")
    t_, n_, h_, k = args.tasks, args.trajectories, args.horizon, args.ensemble
    hid = (args.hidden, args.hidden)
    obs_dim, act_dim = env.obs_dim, env.act_dim
    gen = torch.Generator(device=dev).manual_seed(0)
    ens = DynamicsEnsemble(obs_dim, act_dim, k, hid, device=dev, generator=gen)
    data_gen = torch.Generator(device=dev).manual_seed(1)
    obs = torch.randn(5000, obs_dim, generator=data_gen, device=dev)
    act = torch.rand(5000, act_dim, generator=data_gen, device=dev) * 2 - 1
    noise = 0.1 * torch.randn(5000, obs_dim, generator=data_gen, device=dev)
    ens.fit_normalizer(obs, act, obs + noise)  # non-trivial normalisers, as after a fit

    policy = GaussianMLPPolicy(obs_dim, act_dim).to(dev)
    params = {n: p.detach().expand(t_, *p.shape).clone() for n, p in policy.named_params().items()}
    start = torch.randn(t_, n_, obs_dim, generator=data_gen, device=dev)
    stamps: list[float] = []

    def act_fn(o: torch.Tensor) -> torch.Tensor:
        sync()
        stamps.append(time.perf_counter())  # a step starts with its policy call
        return policy.sample(o, params, generator=gen)

    def rollout(propagation: str) -> tuple[float, list[float]]:
        """(whole-rollout seconds, per-step seconds except the last step)."""
        stamps.clear()
        t0 = time.perf_counter()
        imagine(ens, act_fn, start, h_, env, propagation, gen)
        sync()
        total = time.perf_counter() - t0
        return total, [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]

    rows = t_ * n_
    b = rows // k
    sizes = [obs_dim + act_dim, *hid, obs_dim]
    flops_row = 2 * sum(i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    pol_sizes = [obs_dim, 32, 32, act_dim]
    pol_flops_row = 2 * sum(i * o for i, o in zip(pol_sizes[:-1], pol_sizes[1:], strict=True))
    step_flops = flops_row * rows  # one imagined step of all T x N trajectories

    x_h = torch.randn(k, b, hid[0], device=dev)
    w_h = torch.randn(k, hid[0], hid[1], device=dev)
    bias_h = torch.randn(k, 1, hid[1], device=dev)
    frozen = ens.frozen()
    x_in = torch.randn(k, b, sizes[0], device=dev)
    o_in, a_in = x_in[..., :obs_dim].contiguous(), x_in[..., obs_dim:].contiguous()
    big = torch.randn(2048, 2048, device=dev)

    def bare_layers() -> torch.Tensor:
        x = x_in
        for w, bias in zip(frozen.weights, frozen.biases, strict=True):
            x = torch.baddbmm(bias, x, w)
        return x

    kernels: dict[str, tuple[Callable[[], object], int, float]] = {  # fn, calls/round, FLOPs
        "hidden_bmm": (lambda: torch.baddbmm(bias_h, x_h, w_h), 50, 2 * k * b * hid[0] * hid[1]),
        "bare_layers": (bare_layers, 50, flops_row * k * b),
        "model_step": (lambda: frozen.step(o_in, a_in), 50, flops_row * k * b),
        "big_mm": (lambda: big @ big, 5, 2 * 2048**3),
    }
    step_times: list[float] = []
    totals: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in kernels}
    rollout("task")  # warm-up
    for _ in range(args.repeats):  # interleaved rounds: every figure sees the same machine load
        total, per_step = rollout("task")
        totals.append(total)
        step_times += per_step
        for name, (fn, calls, _) in kernels.items():
            times[name] += _per_call(fn, calls, sync)

    gf = 1e-9
    rate = {
        stat: {name: flops / agg(times[name]) * gf for name, (_, _, flops) in kernels.items()}
        for stat, agg in (("best", min), ("median", statistics.median))
    }
    roll = {"best": step_flops / min(step_times) * gf}
    roll["median"] = step_flops / statistics.median(step_times) * gf
    whole = h_ * rows / min(totals)

    print(f"device={dev} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(
        f"sizes: T={t_} tasks x N={n_} trajectories x H={h_} steps, K={k} members of {hid}, "
        f"obs={obs_dim} act={act_dim}, propagation=task ({b} rows per member per step)"
    )
    print(
        f"FLOPs per member-row-step: model {flops_row:,} (counted), policy {pol_flops_row:,} "
        f"(not counted, {100 * pol_flops_row / flops_row:.1f}% of the model's)"
    )
    print(
        f"whole rollouts: best {min(totals):.3f} s of {len(totals)} -> {whole:,.0f} imagined "
        f"steps/s, {whole * flops_row * gf:.1f} GFLOP/s (includes frozen() and output buffers)"
    )
    print(f"{'GFLOP/s':44s} {'best':>8s} {'median':>8s}")
    print(
        f"{'imagined rollout step (policy+model+reward)':44s} {roll['best']:8.1f} {roll['median']:8.1f}"
    )
    labels = {
        "model_step": "FrozenEnsemble.step (model pass only)",
        "bare_layers": "the 3 layers as bare baddbmm",
        "hidden_bmm": f"baddbmm [{k},{b},{hid[0]}]x[{k},{hid[0]},{hid[1]}]",
        "big_mm": "plain matmul 2048x2048x2048",
    }
    for name, label in labels.items():
        print(f"{label:44s} {rate['best'][name]:8.1f} {rate['median'][name]:8.1f}")
    for stat in ("best", "median"):
        r = roll[stat]
        print(
            f"{stat:6s}: rollout / hidden baddbmm = {100 * r / rate[stat]['hidden_bmm']:.0f}%, "
            f"rollout / bare layers = {100 * r / rate[stat]['bare_layers']:.0f}%, "
            f"rollout / plain matmul = {100 * r / rate[stat]['big_mm']:.0f}%"
        )
    print(
        f"imagined steps/s from the best step: {rows * roll['best'] / (step_flops * gf):,.0f}; "
        f"from the median step: {rows * roll['median'] / (step_flops * gf):,.0f}"
    )

    # where the rest of a rollout step goes
    a0 = policy.sample(start, params, generator=gen)
    s1 = start + 0.01
    parts: dict[str, Callable[[], object]] = {
        "policy sample": lambda: policy.sample(start, params, generator=gen),
        "reward fn": lambda: env.reward(start, a0, s1),
        "frozen() (weight norm + output fold; once per rollout)": ens.frozen,
    }
    for name, fn in parts.items():
        t = statistics.median(_per_call(fn, 20, sync))
        print(f"  {name:55s} {1e3 * t:7.3f} ms")

    # the other propagation modes, one rollout each ("mean" does K model passes, all counted)
    for prop in ("fixed", "random", "mean"):
        per_step = rollout(prop)[1]
        factor = k if prop == "mean" else 1
        med = statistics.median(per_step)
        print(
            f"propagation={prop:6s}: median step {1e3 * med:7.2f} ms, {rows / med:>10,.0f} "
            f"imagined steps/s, {factor * step_flops / med * gf:6.1f} GFLOP/s"
        )

    if args.train_rows > 0:
        _bench_training(ens, args.train_rows, sync)


def _bench_training(ens: DynamicsEnsemble, rows: int, sync: Callable[[], None]) -> None:
    """One epoch of the real trainer (batch 500, masked Adam, validation pass) on ``rows`` rows."""
    dev = ens.device
    k = ens.ensemble_size
    gen = torch.Generator(device=dev).manual_seed(2)
    trainer = EnsembleTrainer(ens, ModelTrainerConfig(max_epochs=1, early_stopping=False), gen)
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
        f"training epoch: {k * n_train / dt:,.0f} member-samples/s, {flops / dt * 1e-9:.1f} GFLOP/s "
        f"(~3x forward for train rows + validation forward), {rows} rows, {dt:.2f} s"
    )


if __name__ == "__main__":
    main()
