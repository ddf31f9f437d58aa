"""Real-env sampling: M envs stepped in lock-step with ONE batched policy call per step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mbmpo.envs import EnvSpec


@dataclass(frozen=True)
class EpisodeBatch:
    """One episode per env. Transitions are grouped by episode (episode 0's first), in time order.

    ``act`` is the action applied to the env (clipped to [-1, 1]); ``raw_act`` what the policy
    sampled.
    """

    obs: np.ndarray
    """``[n, obs]`` float32."""
    act: np.ndarray
    """``[n, act]`` float32, clipped to [-1, 1]."""
    next_obs: np.ndarray
    """``[n, obs]`` float32."""
    episode_returns: np.ndarray
    """``[M]`` undiscounted returns (the simulator's reward)."""
    episode_lengths: np.ndarray
    """``[M]`` steps per episode."""
    raw_act: np.ndarray
    """``[n, act]`` the sampled actions before clipping."""
    rewards: np.ndarray
    """``[n]`` the simulator's rewards."""
    terminated: np.ndarray
    """``[n]`` bool, True on the transition that terminated an episode (not a time-limit cut)."""

    @property
    def num_steps(self) -> int:
        return int(self.obs.shape[0])


class RealSampler:
    """Runs one episode on each of ``num_envs`` envs with a batched ``act_fn``.

    Reproducible: run ``i`` resets env ``m`` with a seed derived from ``(seed, i, m)``, and random
    actions come from a generator seeded with ``seed``; the same seed gives the same sequence of
    batches for the same policy.
    """

    def __init__(
        self, env: EnvSpec, num_envs: int, seed: int, device: str | torch.device = "cpu"
    ) -> None:
        if num_envs <= 0:
            raise ValueError(f"RealSampler: num_envs must be > 0, got {num_envs}")
        self.spec = env
        self.num_envs = num_envs
        self.seed = seed
        self.device = torch.device(device)
        self.envs = [env.make() for _ in range(num_envs)]
        for m, e in enumerate(self.envs):
            e.action_space.seed(seed + m)
        self._runs = 0
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA11CE]))

    def _reset_seed(self, m: int) -> int:
        return int(np.random.SeedSequence([self.seed, self._runs, m]).generate_state(1)[0])

    @torch.no_grad()
    def run(self, act_fn: Callable[[Tensor], Tensor] | None) -> EpisodeBatch:
        """One episode per env; ``act_fn: obs [M, obs] -> act [M, act]`` (row m = episode m; rows of
        finished episodes get their last observation and their actions are ignored); ``None`` =
        uniform random actions in [-1, 1]."""
        m_, spec = self.num_envs, self.spec
        obs = np.stack(
            [
                np.asarray(e.reset(seed=self._reset_seed(m))[0], dtype=np.float32)
                for m, e in enumerate(self.envs)
            ]
        )
        self._runs += 1
        active = np.ones(m_, dtype=bool)
        steps: list[list[tuple[Any, ...]]] = [[] for _ in range(m_)]
        returns = np.zeros(m_)
        while active.any():
            if act_fn is None:
                raw = self._rng.uniform(-1.0, 1.0, size=(m_, spec.act_dim)).astype(np.float32)
            else:
                out = act_fn(torch.as_tensor(obs, device=self.device))
                raw = out.detach().cpu().numpy().astype(np.float32).reshape(m_, spec.act_dim)
            applied = np.clip(raw, -1.0, 1.0)
            for m in np.flatnonzero(active):
                nxt, r, term, trunc, _ = self.envs[m].step(applied[m])
                nxt = np.asarray(nxt, dtype=np.float32)
                steps[m].append((obs[m].copy(), applied[m], raw[m], nxt, float(r), bool(term)))
                returns[m] += float(r)
                obs[m] = nxt
                if term or trunc:
                    active[m] = False
        flat = [s for ep in steps for s in ep]
        return EpisodeBatch(
            obs=np.stack([s[0] for s in flat]),
            act=np.stack([s[1] for s in flat]),
            next_obs=np.stack([s[3] for s in flat]),
            episode_returns=returns,
            episode_lengths=np.array([len(ep) for ep in steps]),
            raw_act=np.stack([s[2] for s in flat]),
            rewards=np.array([s[4] for s in flat]),
            terminated=np.array([s[5] for s in flat]),
        )

    def state_dict(self) -> dict[str, Any]:
        """Run counter (it derives every reset seed, so the envs' own RNGs need no saving) and the
        random-action generator's state."""
        return {"runs": self._runs, "rng": dict(self._rng.bit_generator.state)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self._runs = int(d["runs"])
        self._rng.bit_generator.state = d["rng"]

    def close(self) -> None:
        for e in self.envs:
            e.close()
