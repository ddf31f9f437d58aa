"""Imagined rollouts through the dynamics ensemble: all tasks, members and trajectories advance
together, one tensor program per time step (no Python loop over tasks or members).

Propagation modes (which member predicts which row):

- ``"task"``: task ``t`` always uses member ``t // (T // K)`` (MB-MPO; needs ``T % K == 0``).
  Tasks are contiguous, so ``[T, N]`` rows are just reshaped to ``[K, T // K * N]``.
- ``"fixed"``: a member per trajectory for its whole length. Balanced: the ``T * N`` rows are
  randomly permuted once and dealt to the members in turn, so every member gets ``ceil`` or
  ``floor(T * N / K)`` trajectories and each step is one batched ensemble pass.
- ``"random"``: a random member per step (ME-TRPO): a fresh balanced permutation every step.
- ``"mean"``: the ensemble mean (every row through every member: K times the cost).

The model sees the action clipped to [-1, 1] (what the simulator applies and what the real
sampler stores); the reward gets the raw sampled action, as the simulator's control cost does.
After termination a trajectory stays in its terminal state (so nothing drifts or overflows) and
gets mask 0 and reward 0 on every later step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mbmpo.envs import EnvSpec, sample_initial_states
from mbmpo.models.buffer import TransitionBuffer
from mbmpo.models.ensemble import DynamicsEnsemble, balanced_assignment, grouped_predict

PROPAGATIONS = ("task", "fixed", "random", "mean")

ActFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ImaginedBatch:
    """Imagined trajectories of T tasks x N trajectories x H steps."""

    obs: Tensor
    """``[T, N, H, obs]`` state at each step."""
    act: Tensor
    """``[T, N, H, act]`` raw (unclipped) sampled action."""
    rew: Tensor
    """``[T, N, H]`` model reward r(s, a, s'), 0 after termination."""
    mask: Tensor
    """``[T, N, H]`` 1.0 while the trajectory is alive at that step, else 0.0."""
    final_obs: Tensor
    """``[T, N, obs]`` the state after the last step (for bootstrapping, if wanted)."""
    members: Tensor | None = None
    """``[T, N]`` member used by each trajectory ("task"/"fixed"); None for "random"/"mean"."""


@torch.no_grad()
def imagine(
    ensemble: DynamicsEnsemble,
    act_fn: ActFn,
    start_obs: Tensor,
    horizon: int,
    env: EnvSpec,
    propagation: str,
    generator: torch.Generator,
) -> ImaginedBatch:
    """Roll ``act_fn`` out in the ensemble from ``start_obs [T, N, obs]`` for ``horizon`` steps.

    :param act_fn: ``obs [T, N, obs] -> act [T, N, act]`` (samples; task t may use its own params).
    :param propagation: one of :data:`PROPAGATIONS`.
    :param generator: draws the member assignment ("fixed", "random"); the policy's own sampling
        randomness is ``act_fn``'s business.
    """
    if propagation not in PROPAGATIONS:
        raise ValueError(f"imagine: unknown propagation {propagation!r}; allowed: {PROPAGATIONS}")
    if start_obs.ndim != 3 or start_obs.shape[-1] != ensemble.obs_dim:
        raise ValueError(
            f"imagine: start_obs must be [T, N, {ensemble.obs_dim}], got {tuple(start_obs.shape)}"
        )
    if horizon <= 0:
        raise ValueError(f"imagine: horizon must be > 0, got {horizon}")
    t_, n_, obs_dim = start_obs.shape
    act_dim = ensemble.act_dim
    k = ensemble.ensemble_size
    rows = t_ * n_
    if propagation == "task" and t_ % k != 0:
        raise ValueError(
            f"imagine: propagation 'task' needs the number of tasks ({t_}) to be a multiple of "
            f"the ensemble size ({k})"
        )
    if propagation in ("fixed", "random") and rows < k:
        raise ValueError(
            f"imagine: propagation {propagation!r} needs at least K={k} trajectories, got {rows}"
        )
    dev = ensemble.device
    model = ensemble.frozen()  # effective weights once per rollout, normalisation folded in

    obs_out = torch.empty(t_, n_, horizon, obs_dim, device=dev)
    act_out = torch.empty(t_, n_, horizon, act_dim, device=dev)
    rew_out = torch.empty(t_, n_, horizon, device=dev)
    mask_out = torch.empty(t_, n_, horizon, device=dev)
    alive = torch.ones(t_, n_, dtype=torch.bool, device=dev)
    terminates = env.termination_fn is not None

    members: Tensor | None = None
    fixed_idx: Tensor | None = None
    if propagation == "task":
        members = (torch.arange(t_, device=dev) // (t_ // k))[:, None].expand(t_, n_)
    elif propagation == "fixed":
        fixed_idx = balanced_assignment(rows, k, generator, dev)
        # slot j * K + k of idx.T.flatten() is member k; slots past `rows` are padding repeats
        slot_member = torch.arange(k, device=dev).repeat(fixed_idx.shape[1])[:rows]
        members = torch.empty(rows, dtype=torch.long, device=dev)
        members[fixed_idx.T.reshape(-1)[:rows]] = slot_member
        members = members.view(t_, n_)

    s = start_obs.to(device=dev, dtype=torch.float32)
    for h in range(horizon):
        a = act_fn(s)
        obs_out[:, :, h] = s
        act_out[:, :, h] = a
        mask_out[:, :, h] = alive
        a_model = a.clamp(-1.0, 1.0)
        if propagation == "task":
            nxt = model.step(s.reshape(k, -1, obs_dim), a_model.reshape(k, -1, act_dim))
        elif propagation == "mean":
            nxt = model.step(
                s.reshape(1, rows, obs_dim).expand(k, rows, obs_dim),
                a_model.reshape(1, rows, act_dim).expand(k, rows, act_dim),
            ).mean(0)
        else:
            idx = (
                fixed_idx if fixed_idx is not None else balanced_assignment(rows, k, generator, dev)
            )
            nxt = grouped_predict(
                model.step, s.reshape(rows, obs_dim), a_model.reshape(rows, act_dim), idx
            )
        nxt = nxt.view(t_, n_, obs_dim)
        rew_out[:, :, h] = env.reward(s, a, nxt) * alive
        if terminates:
            nxt = torch.where(alive[..., None], nxt, s)  # already-dead trajectories stay put
            alive = alive & ~env.termination(nxt)
        s = nxt
    return ImaginedBatch(
        obs=obs_out, act=act_out, rew=rew_out, mask=mask_out, final_obs=s, members=members
    )


class StartStateSampler:
    """Start states for imagined rollouts.

    ``mode="reset"``: the real env's reset distribution (MB-MPO, Figure 1).
    ``mode="buffer"``: each state, with probability ``reset_prob`` from the reset distribution,
    else uniformly from the last ``recent`` states of the buffer (Figure 5).
    """

    MODES = ("reset", "buffer")

    def __init__(
        self,
        env: EnvSpec,
        mode: str = "reset",
        reset_prob: float = 0.1,
        recent: int = 10_000,
        seed: int = 0,
    ) -> None:
        if mode not in self.MODES:
            raise ValueError(f"StartStateSampler: unknown mode {mode!r}; allowed: {self.MODES}")
        if not 0.0 <= reset_prob <= 1.0:
            raise ValueError(f"StartStateSampler: reset_prob must be in [0, 1], got {reset_prob}")
        if recent <= 0:
            raise ValueError(f"StartStateSampler: recent must be > 0, got {recent}")
        self.env = env
        self.mode = mode
        self.reset_prob = reset_prob
        self.recent = recent
        self._rng = np.random.default_rng(seed)  # seeds of the real env resets

    def state_dict(self) -> dict[str, Any]:
        """The reset-seed generator's state (buffer draws use the caller's generator)."""
        return {"rng": dict(self._rng.bit_generator.state)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self._rng.bit_generator.state = d["rng"]

    def _reset_states(self, n: int, device: torch.device) -> Tensor:
        states = sample_initial_states(self.env, n, self._rng)
        return torch.as_tensor(np.asarray(states), dtype=torch.float32, device=device)

    def sample(
        self,
        shape: tuple[int, ...],
        buffer: TransitionBuffer | None,
        generator: torch.Generator,
        device: str | torch.device | None = None,
    ) -> Tensor:
        """``[*shape, obs]`` start states (on ``device``, else the buffer's, else cpu)."""
        n = int(np.prod(shape)) if len(shape) else 1
        dev = (
            torch.device(device)
            if device is not None
            else (buffer.device if buffer is not None else torch.device("cpu"))
        )
        if self.mode == "reset":
            out = self._reset_states(n, dev)
        else:
            if buffer is None or len(buffer) == 0:
                raise ValueError("StartStateSampler: mode 'buffer' needs a non-empty buffer")
            out = buffer.sample_obs(n, generator, recent=self.recent).to(dev)
            use_reset = torch.rand(n, generator=generator, device=generator.device).to(dev)
            use_reset = use_reset < self.reset_prob
            m = int(use_reset.sum())
            if m:
                out[use_reset] = self._reset_states(m, dev)
        return out.view(*shape, self.env.obs_dim)
