"""FIFO buffer of real transitions (the model's training data)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

ArrayLike = np.ndarray | Tensor


class TransitionBuffer:
    """A ring buffer keeping the last ``capacity`` real transitions (paper: 3e5).

    Every transition also gets a global id (0, 1, 2, ... in order of arrival, never reused), so
    that consumers such as the trainer can keep per-transition state (e.g. its train/validation
    side) across fits while the oldest transitions drop out.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int = 300_000,
        device: str | torch.device = "cpu",
    ) -> None:
        if obs_dim <= 0 or act_dim <= 0:
            raise ValueError(
                f"TransitionBuffer: obs_dim and act_dim must be > 0, got {obs_dim}, {act_dim}"
            )
        if capacity <= 0:
            raise ValueError(f"TransitionBuffer: capacity must be > 0, got {capacity}")
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.capacity = capacity
        self.device = torch.device(device)
        self._obs = torch.zeros(capacity, obs_dim, device=self.device)
        self._act = torch.zeros(capacity, act_dim, device=self.device)
        self._next_obs = torch.zeros(capacity, obs_dim, device=self.device)
        self._total = 0  # transitions ever added; the next transition's id

    def __len__(self) -> int:
        return min(self._total, self.capacity)

    @property
    def total_added(self) -> int:
        """How many transitions were ever added (the id the next one gets)."""
        return self._total

    def _as_tensor(self, x: ArrayLike, dim: int, name: str) -> Tensor:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
        t = t.to(device=self.device, dtype=torch.float32)
        if t.ndim != 2 or t.shape[1] != dim:
            raise ValueError(
                f"TransitionBuffer.add: {name} must have shape [N, {dim}], got {tuple(t.shape)}"
            )
        return t

    def add(self, obs: ArrayLike, act: ArrayLike, next_obs: ArrayLike) -> None:
        """Append transitions ``obs [N, obs], act [N, act], next_obs [N, obs]``; drops the oldest
        beyond ``capacity``."""
        o = self._as_tensor(obs, self.obs_dim, "obs")
        a = self._as_tensor(act, self.act_dim, "act")
        no = self._as_tensor(next_obs, self.obs_dim, "next_obs")
        n = o.shape[0]
        if a.shape[0] != n or no.shape[0] != n:
            raise ValueError(
                f"TransitionBuffer.add: row counts differ (obs {n}, act {a.shape[0]}, next_obs {no.shape[0]})"
            )
        if n == 0:
            return
        if not (torch.isfinite(o).all() and torch.isfinite(a).all() and torch.isfinite(no).all()):
            raise ValueError("TransitionBuffer.add: transitions contain NaN or inf")
        if n > self.capacity:  # only the last `capacity` can survive
            skip = n - self.capacity
            o, a, no = o[skip:], a[skip:], no[skip:]
            self._total += skip
            n = self.capacity
        pos = (self._total + torch.arange(n, device=self.device)) % self.capacity
        self._obs[pos] = o
        self._act[pos] = a
        self._next_obs[pos] = no
        self._total += n

    def _order(self) -> Tensor:
        """Storage positions of the stored transitions, oldest first ``[n]``."""
        n = len(self)
        start = self._total - n
        return (start + torch.arange(n, device=self.device)) % self.capacity

    def ids(self) -> Tensor:
        """Global ids of the stored transitions, oldest first ``[n]`` (int64)."""
        n = len(self)
        return torch.arange(self._total - n, self._total, device=self.device)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``obs [n, obs], act [n, act], next_obs [n, obs]``, oldest first (copies)."""
        if self._total <= self.capacity:  # not wrapped yet: contiguous prefix
            n = self._total
            return self._obs[:n].clone(), self._act[:n].clone(), self._next_obs[:n].clone()
        order = self._order()
        return self._obs[order], self._act[order], self._next_obs[order]

    def sample_obs(self, n: int, generator: torch.Generator, recent: int | None = None) -> Tensor:
        """``[n, obs]`` states drawn uniformly (with replacement) from the last ``recent`` stored
        transitions (all of them when ``None``). States are the transitions' ``obs``."""
        size = len(self)
        if size == 0:
            raise ValueError("TransitionBuffer.sample_obs: the buffer is empty")
        pool = size if recent is None else min(int(recent), size)
        if pool <= 0:
            raise ValueError(f"TransitionBuffer.sample_obs: recent must be > 0, got {recent}")
        gen_device = generator.device
        back = torch.randint(pool, (n,), generator=generator, device=gen_device).to(self.device)
        pos = (self._total - 1 - back) % self.capacity  # back = 0 is the newest
        return self._obs[pos]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the buffer (stored rows oldest first, CPU tensors)."""
        obs, act, next_obs = self.tensors()
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "capacity": self.capacity,
            "total": self._total,
            "obs": obs.cpu(),
            "act": act.cpu(),
            "next_obs": next_obs.cpu(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (dims and capacity must match)."""
        for key in ("obs_dim", "act_dim", "capacity"):
            if d[key] != getattr(self, key):
                raise ValueError(
                    f"TransitionBuffer.load_state_dict: {key} is {d[key]} in the checkpoint, "
                    f"{getattr(self, key)} here"
                )
        n = d["obs"].shape[0]
        total = int(d["total"])
        self._total = total - n
        self._obs.zero_()
        self._act.zero_()
        self._next_obs.zero_()
        self.add(d["obs"], d["act"], d["next_obs"])
        assert self._total == total
