"""MB-MPC: random-shooting model-predictive control on the dynamics ensemble (Nagabandi et al.
2018, as the MB-MPO authors ran it for Figure 2; reference.md section 4).

At every real step, for every env at once: draw ``candidates`` uniform action sequences in
[-1, 1]^(plan_horizon x act), roll each out in the ensemble with a random member per sequence and
step, score it by ``sum_t discount^t r(s_t, a_t, s_{t+1})`` with the env's model reward (0 after a
predicted termination), and execute the first action of the best sequence. Nothing is learned
besides the ensemble, so the agent's ``improve`` hook does nothing; data aggregation is the shared
loop's (4000 random steps first, then 4000 on-policy MPC steps per iteration into the FIFO buffer,
ensemble refit on the whole buffer).

The planner is one tensor program per planning step over ``[envs, candidates]`` rows and all
members (the imagined-rollout code of the core, ``propagation="random"``): the only Python loop is
over the ``plan_horizon`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from baselines.mb_common import ModelBasedConfig, ModelBasedMethod
from mbmpo.envs import EnvSpec
from mbmpo.loop import ActFn, Agent, LoopContext
from mbmpo.models import DynamicsEnsemble
from mbmpo.rollouts import imagine

PLANNER_PROPAGATIONS = ("random", "fixed", "mean")
"""Which member scores which candidate step: a random member per sequence and step (the default),
one random member per whole sequence, or the ensemble mean."""


@dataclass(frozen=True)
class MBMPCConfig(ModelBasedConfig):
    """MB-MPC settings (defaults: reference.md section 4)."""

    candidates: int = 1000
    """Uniform random action sequences scored per env per real step."""
    plan_horizon: int = 10
    """Length of each candidate sequence (model steps)."""
    discount: float = 0.99
    """Discount of the model rewards in a sequence's score."""
    propagation: str = "random"
    """Member per candidate step: "random" (per sequence and step), "fixed" (per sequence), "mean"."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.candidates < 1:
            self._fail("candidates", "must be >= 1")
        if self.plan_horizon < 1:
            self._fail("plan_horizon", "must be >= 1")
        if not 0.0 <= self.discount <= 1.0:
            self._fail("discount", "must be in [0, 1]")
        if self.propagation not in PLANNER_PROPAGATIONS:
            self._fail("propagation", f"must be one of {PLANNER_PROPAGATIONS}")
        if self.propagation in ("random", "fixed") and self.candidates < self.ensemble_size:
            self._fail("candidates", f"must be >= ensemble_size ({self.ensemble_size})")


class RandomShootingPlanner:
    """Random-shooting MPC for a batch of envs (see the module docstring)."""

    def __init__(
        self,
        env: EnvSpec,
        candidates: int = 1000,
        horizon: int = 10,
        discount: float = 0.99,
        propagation: str = "random",
    ) -> None:
        if propagation not in PLANNER_PROPAGATIONS:
            raise ValueError(
                f"RandomShootingPlanner: propagation must be one of {PLANNER_PROPAGATIONS}, "
                f"got {propagation!r}"
            )
        if candidates < 1 or horizon < 1:
            raise ValueError(
                f"RandomShootingPlanner: candidates and horizon must be >= 1, got {candidates}, "
                f"{horizon}"
            )
        self.env = env
        self.candidates = candidates
        self.horizon = horizon
        self.discount = discount
        self.propagation = propagation

    def sample_sequences(self, num_envs: int, generator: torch.Generator) -> Tensor:
        """Uniform candidate sequences ``[M, C, H, act]`` in [-1, 1]."""
        shape = (num_envs, self.candidates, self.horizon, self.env.act_dim)
        u = torch.rand(shape, generator=generator, device=generator.device)
        return u.mul_(2.0).sub_(1.0)

    def score(
        self, ensemble: DynamicsEnsemble, obs: Tensor, sequences: Tensor, generator: torch.Generator
    ) -> Tensor:
        """Discounted model return ``[M, C]`` of ``sequences [M, C, H, act]`` from ``obs [M, obs]``."""
        m, c, h, _ = sequences.shape
        if obs.shape != (m, self.env.obs_dim):
            raise ValueError(
                f"RandomShootingPlanner.score: obs must be [{m}, {self.env.obs_dim}], "
                f"got {tuple(obs.shape)}"
            )
        dev = ensemble.device
        seqs = sequences.to(dev)
        step = iter(range(h))

        def act_fn(_: Tensor) -> Tensor:  # the h-th action of every candidate, [M, C, act]
            return seqs[:, :, next(step)]

        start = obs.to(device=dev, dtype=torch.float32)[:, None, :].expand(m, c, obs.shape[-1])
        batch = imagine(ensemble, act_fn, start, h, self.env, self.propagation, generator)
        weights = self.discount ** torch.arange(h, device=dev, dtype=batch.rew.dtype)
        return batch.rew @ weights  # rewards are already 0 after a predicted termination

    @torch.no_grad()
    def plan(self, ensemble: DynamicsEnsemble, obs: Tensor, generator: torch.Generator) -> Tensor:
        """The first action ``[M, act]`` of each env's best candidate sequence at ``obs [M, obs]``."""
        seqs = self.sample_sequences(obs.shape[0], generator).to(ensemble.device)
        return first_action_of_best(seqs, self.score(ensemble, obs, seqs, generator))


def first_action_of_best(sequences: Tensor, scores: Tensor) -> Tensor:
    """``sequences [M, C, H, act]``, ``scores [M, C]`` -> first action ``[M, act]`` of the argmax."""
    best = scores.argmax(dim=1)
    return sequences[torch.arange(sequences.shape[0], device=sequences.device), best, 0]


class MBMPCAgent:
    """The MPC actor as the shared loop's agent: plans for collection and evaluation alike."""

    improve_phase = "improve"
    collect_return_key = "mbmpc/collect_return"

    def __init__(self, env: EnvSpec, config: MBMPCConfig) -> None:
        self.planner = RandomShootingPlanner(
            env,
            candidates=config.candidates,
            horizon=config.plan_horizon,
            discount=config.discount,
            propagation=config.propagation,
        )

    def _actor(self, ensemble: DynamicsEnsemble, generator: torch.Generator) -> ActFn:
        planner = self.planner
        return lambda obs: planner.plan(ensemble, obs, generator)

    def collect_act_fn(self, ctx: LoopContext, num_envs: int) -> ActFn:
        """Plan for all ``num_envs`` collection envs at once (training randomness)."""
        return self._actor(ctx.ensemble, ctx.generator)

    def eval_act_fn(self, ctx: LoopContext, num_envs: int) -> ActFn:
        """The same planner with the evaluation randomness."""
        return self._actor(ctx.ensemble, ctx.eval_generator)

    def improve(self, ctx: LoopContext) -> dict[str, float]:
        """Nothing to improve: the freshly fit ensemble is all the planner needs."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class MBMPC(ModelBasedMethod):
    """MB-MPC behind :class:`mbmpo.protocols.Method` (registered as ``"baselines.mbmpc:MBMPC"``).

    ``config`` is a mapping of :class:`MBMPCConfig` fields (unknown keys raise).
    """

    config_class = MBMPCConfig
    config: MBMPCConfig

    def make_agent(self) -> Agent:
        return MBMPCAgent(self.env, self.config)
