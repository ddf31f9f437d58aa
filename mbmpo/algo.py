"""MB-MPO (Clavera et al., CoRL 2018): the composition of the parts, nothing else.

:class:`MBMPOAgent` is the policy-improvement hook of the shared :class:`~mbmpo.loop.ModelBasedLoop`:
each of its ``meta_steps`` meta steps (reference.md section 1, step 4)

a. rolls the pre-update policy theta out in the ensemble (task i on model i // (T / K)),
b. fits a linear baseline per task and standardises the advantages per task,
c. takes the inner step theta'_i = theta - alpha * grad L_in_i(theta) for all tasks at once,
d. rolls the adapted policies out on the same models (fresh start states),
e. takes the outer TRPO step on theta (and alpha, if learnable) through the inner step, exactly.

Real episodes of the next iteration run the adapted policies of the last meta step's inner step
(``collect_with="adapted"``); evaluation runs the pre-update policy theta, sampling actions as the
authors' sampler did (``eval_deterministic=False``). With ``inner_lr = 0`` the pre-update rollouts
are skipped (theta'_i = theta), which leaves the algorithm unchanged and halves the cost.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from mbmpo import checkpoint as ckpt
from mbmpo.config import MBMPOConfig, PolicyGradientConfig
from mbmpo.envs import EnvSpec
from mbmpo.loop import ActFn, LoopContext, ModelBasedLoop, derive_seed
from mbmpo.optim import (
    MetaObjective,
    TaskBatch,
    discounted_returns,
    fit_linear_baseline,
    gae_advantages,
    standardize_per_task,
    trpo_step,
)
from mbmpo.policies import GaussianMLPPolicy
from mbmpo.protocols import Budget, RunSummary, Tracker
from mbmpo.rollouts import ImaginedBatch, StartStateSampler, imagine


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, with a clear error when CUDA is asked for but unavailable."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but CUDA is not available here")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {str(device)!r}")
    return dev


class AdvantageSettings(Protocol):
    """The config fields :func:`advantages` reads (MBMPOConfig has them; so does ME-TRPO's)."""

    @property
    def discount(self) -> float: ...
    @property
    def gae_lambda(self) -> float: ...
    @property
    def baseline_reg(self) -> float: ...
    @property
    def normalize_advantages(self) -> bool: ...


def advantages(batch: ImaginedBatch, config: AdvantageSettings) -> Tensor:
    """Per-task advantages ``[T, N, H]``: linear baseline fit per task (float64), GAE, standardised."""
    rew, mask = batch.rew, batch.mask
    ret = discounted_returns(rew, mask, config.discount)
    values = fit_linear_baseline(
        batch.obs.double(), ret.double(), mask.double(), reg_coeff=config.baseline_reg
    ).to(rew.dtype)
    adv = gae_advantages(rew, values, mask, config.discount, config.gae_lambda)
    if config.normalize_advantages:
        adv = standardize_per_task(adv, mask)
    return adv


def task_batch(batch: ImaginedBatch, adv: Tensor) -> TaskBatch:
    """Flatten ``[T, N, H, ...]`` imagined data into ``[T, N * H, ...]``."""
    t = batch.obs.shape[0]
    return TaskBatch(
        obs=batch.obs.reshape(t, -1, batch.obs.shape[-1]),
        act=batch.act.reshape(t, -1, batch.act.shape[-1]),
        adv=adv.reshape(t, -1),
        mask=batch.mask.reshape(t, -1),
    )


def mean_return(batch: ImaginedBatch) -> float:
    """Mean undiscounted imagined return per trajectory."""
    return float(batch.rew.sum(-1).mean())


def make_policy(
    env: EnvSpec, config: PolicyGradientConfig, seed: int, device: torch.device
) -> GaussianMLPPolicy:
    """The run's initial policy, drawn from its own seed stream (the global torch RNG is left as
    it was, so building a policy never shifts any other random stream)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "policy"))
        return GaussianMLPPolicy(
            env.obs_dim,
            env.act_dim,
            hidden_sizes=config.policy_hidden_sizes,
            init_std=config.policy_init_std,
        ).to(device)


class MBMPOAgent:
    """The meta-policy and its improvement by meta steps on the ensemble (see the module doc)."""

    improve_phase = "meta"

    def __init__(self, env: EnvSpec, config: MBMPOConfig, seed: int, device: torch.device) -> None:
        self.env = env
        self.config = config
        self.device = device
        self.policy = make_policy(env, config, seed, device)
        self.step_sizes = {
            k: torch.full_like(v.detach(), config.inner_lr)
            for k, v in self.policy.named_params().items()
        }
        self.adapted: dict[str, Tensor] | None = None  # [T, ...] from the last inner step
        self.start_sampler = StartStateSampler(
            env,
            mode=config.start_states,
            reset_prob=config.start_reset_prob,
            recent=config.start_recent,
            seed=derive_seed(seed, "start-states"),
        )
        self.trpo = config.trpo_config()
        self.horizon = config.imagined_horizon or env.horizon

    @property
    def collect_return_key(self) -> str:
        """Real returns of the collection episodes: the adapted policies' (the paper's
        post-update return), or theta's with ``collect_with="pre_update"``."""
        if self.config.collect_with == "pre_update":
            return "mbmpo/collect_pre_update_return"
        return "mbmpo/post_update_return"

    # ----- acting ---------------------------------------------------------------------------------
    def _theta(self) -> dict[str, Tensor]:
        return {k: v.detach() for k, v in self.policy.named_params().items()}

    def _sampler(self, params: Mapping[str, Tensor], gen: torch.Generator) -> ActFn:
        policy = self.policy

        def act(obs: Tensor) -> Tensor:
            with torch.no_grad():
                return policy.sample(obs, params, gen)

        return act

    def collect_act_fn(self, ctx: LoopContext, num_envs: int) -> ActFn:
        """Row m = task m's adapted policy theta'_m (or theta with ``collect_with="pre_update"``)."""
        if self.config.collect_with == "pre_update" or self.adapted is None:
            return self._sampler(self._theta(), ctx.generator)
        adapted = self.adapted
        t = next(iter(adapted.values())).shape[0]
        if num_envs != t:
            raise ValueError(f"MB-MPO collects one episode per task: {num_envs} envs, {t} tasks")
        act_one = self._sampler(adapted, ctx.generator)
        return lambda obs: act_one(obs.unsqueeze(1)).squeeze(1)  # [T, obs] -> [T, 1, obs]

    def eval_act_fn(self, ctx: LoopContext, num_envs: int) -> ActFn:
        """The pre-update policy theta (sampled, or its mean with ``eval_deterministic``)."""
        if self.config.eval_deterministic:
            policy = self.policy

            def mean_act(obs: Tensor) -> Tensor:
                with torch.no_grad():
                    return policy.mean_log_std(obs)[0]

            return mean_act
        return self._sampler(self._theta(), ctx.eval_generator)

    # ----- improving ------------------------------------------------------------------------------
    def _rollout(self, ctx: LoopContext, params: Mapping[str, Tensor]) -> ImaginedBatch:
        cfg = self.config
        shape = (cfg.meta_batch_size, cfg.imagined_trajectories)
        start = self.start_sampler.sample(shape, ctx.buffer, ctx.generator, device=ctx.device)
        return imagine(
            ctx.ensemble,
            self._sampler(params, ctx.generator),
            start,
            self.horizon,
            self.env,
            cfg.propagation,
            ctx.generator,
        )

    def meta_step(self, ctx: LoopContext) -> dict[str, float]:
        """One meta step (a-e above); returns its metrics."""
        cfg = self.config
        t_imag = 0.0
        t0 = time.perf_counter()
        theta = self._theta()
        pre_batch: TaskBatch | None = None
        out: dict[str, float] = {}
        if cfg.adapts:
            pre = self._rollout(ctx, theta)
            t_imag += time.perf_counter() - t0
            pre_batch = task_batch(pre, advantages(pre, cfg))
            out["mbmpo/imagined_pre_return"] = mean_return(pre)
        obj = MetaObjective(
            self.policy,
            theta,
            self.step_sizes,
            cfg.learnable_inner_lr,
            pre_batch,
            cfg.meta_batch_size,
        )
        if pre_batch is not None:
            out["train/inner_loss"] = obj.inner_loss_value
        t1 = time.perf_counter()
        post = self._rollout(ctx, obj.adapted)
        t_imag += time.perf_counter() - t1
        obj.set_post(task_batch(post, advantages(post, cfg)))
        loss, grad = obj.loss_and_grad()
        res = trpo_step(obj.x0(), grad, obj.fvp, obj.loss_kl, loss, self.trpo)
        new_theta, new_alpha = obj.split(res.params)
        with torch.no_grad():
            for k, p in self.policy.named_params().items():
                p.copy_(new_theta[k])
        if cfg.learnable_inner_lr:
            self.step_sizes = {k: v.detach().clone() for k, v in new_alpha.items()}
        self.adapted = {k: v.detach().clone() for k, v in obj.adapted.items()}
        out.update(
            {
                "mbmpo/imagined_post_return": mean_return(post),
                "train/outer_loss_before": res.loss_before,
                "train/outer_loss_after": res.loss_after,
                "train/kl": res.kl,
                "train/step_accepted": float(res.accepted),
                "train/backtracks": float(res.backtracks),
                "time/imagine_s": t_imag,
                "time/policy_opt_s": time.perf_counter() - t0 - t_imag,
            }
        )
        return out

    def improve(self, ctx: LoopContext) -> dict[str, float]:
        """``meta_steps`` meta steps; logs the means over them (and the last step's returns)."""
        rows = [self.meta_step(ctx) for _ in range(self.config.meta_steps)]
        out: dict[str, float] = {}
        for key in rows[0]:
            vals = [r[key] for r in rows if key in r]
            if key.startswith("time/"):
                out[key] = float(sum(vals))
            elif key.startswith("mbmpo/imagined"):
                out[key] = vals[-1]
            else:
                out[key] = float(sum(vals) / len(vals))
        accepted = [r for r in rows if r["train/step_accepted"] > 0]
        out["train/kl"] = (
            float(sum(r["train/kl"] for r in accepted) / len(accepted)) if accepted else 0.0
        )
        out["policy/std_mean"] = float(self.policy.log_std.detach().exp().mean())
        if self.config.learnable_inner_lr:
            out["mbmpo/inner_lr_mean"] = float(
                torch.cat([v.reshape(-1) for v in self.step_sizes.values()]).mean()
            )
        return out

    # ----- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()},
            "step_sizes": {k: v.cpu().clone() for k, v in self.step_sizes.items()},
            "adapted": None
            if self.adapted is None
            else {k: v.cpu().clone() for k, v in self.adapted.items()},
            "start_sampler": ckpt.start_sampler_state(self.start_sampler),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.step_sizes = {k: v.to(self.device) for k, v in state["step_sizes"].items()}
        adapted = state["adapted"]
        self.adapted = (
            None if adapted is None else {k: v.to(self.device) for k, v in adapted.items()}
        )
        ckpt.load_start_sampler_state(self.start_sampler, state["start_sampler"])


class MBMPO:
    """MB-MPO behind :class:`mbmpo.protocols.Method` (registered as ``"mbmpo.algo:MBMPO"``).

    ``config`` is a mapping of :class:`~mbmpo.config.MBMPOConfig` fields (unknown keys raise).
    A ``run_dir`` holding a checkpoint is resumed.
    """

    config_class: ClassVar[type[MBMPOConfig]] = MBMPOConfig
    """Lets ``suites`` validate a manifest's MB-MPO config before any run starts."""

    def __init__(
        self,
        env: EnvSpec,
        seed: int,
        config: Mapping[str, Any],
        tracker: Tracker,
        run_dir: Path,
        device: str = "cpu",
    ) -> None:
        self.config = (
            config if isinstance(config, MBMPOConfig) else MBMPOConfig.from_mapping(config)
        )
        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)
        self.device = resolve_device(device)
        self.env = env
        self.seed = int(seed)
        self.agent = MBMPOAgent(env, self.config, self.seed, self.device)
        self.loop = ModelBasedLoop(
            env, self.seed, self.config.loop_config(), self.agent, tracker, run_dir, self.device
        )

    @property
    def policy(self) -> GaussianMLPPolicy:
        return self.agent.policy

    def train(self, budget: Budget) -> RunSummary:
        """Train until ``budget.total_env_steps`` real steps (resuming from ``run_dir``)."""
        return self.loop.train(budget)

    def close(self) -> None:
        """Close the real envs."""
        self.loop.close()
