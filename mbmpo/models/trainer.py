"""Fitting the dynamics ensemble: per-member train/validation split, per-member early stopping,
masked Adam so a stopped member stays frozen, warm start across fits.

Split: every transition gets, when it is first seen by :meth:`EnsembleTrainer.fit`, a side per
member (train or validation). For each chunk of new transitions, ``n_val = floor(f * n) +
Bernoulli(frac(f * n))`` of them go to each member's validation set (``f`` =
``validation_fraction``, so the expected fraction is exactly ``f`` even for tiny chunks), chosen by
an independent random permutation per member. A transition keeps its side across fits until it
drops out of the FIFO buffer, so a model is never validated on data it was trained on earlier.

Early stopping (the authors' rule, per member, reset at every fit): after each epoch the member's
validation loss ``L_e`` (MSE in normalised-delta space over its whole validation set) updates a
rolling average ``R_e = p * R_{e-1} + (1 - p) * L_e`` (``e >= 2``) with persistency ``p`` (0.99),
starting from ``R_1 = 1.5 * L_1`` (a deliberately high start, so early epochs cannot stop a member).
The member stops after epoch ``e >= 2`` as soon as ``R_e > R_{e-1}``, i.e. as soon as its
validation loss rises above its rolling average (``L_e > R_{e-1}``). With ``p = 0.99`` the rolling
average forgets the high start slowly (time constant ~100 epochs), so the rule is lenient: a member
stops once its validation loss has clearly turned upwards, or has long plateaued. A stopped member's weights and Adam moments are not updated for the rest of the
fit; it is trained again at the next fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mbmpo.models.buffer import TransitionBuffer
from mbmpo.models.ensemble import DynamicsEnsemble

_VAL_CHUNK = 16_384  # rows per member per validation forward pass (bounds memory)


@dataclass(frozen=True)
class ModelTrainerConfig:
    """How the ensemble is fit (paper defaults)."""

    learning_rate: float = 1e-3
    """Adam step size."""
    batch_size: int = 500
    """Rows per member per Adam step (every member gets its own batch from its own train set)."""
    max_epochs: int = 500
    """Upper bound on epochs per fit (an epoch = one pass over the largest member train set)."""
    max_steps: int | None = None
    """Optional budget of Adam steps per fit, rounded down to whole epochs (at least one):
    ``epochs <= max(1, max_steps // steps_per_epoch)``. ``None`` (the paper): only ``max_epochs``
    and early stopping bound the fit. A step budget makes a fit's cost independent of the buffer
    size (an epoch over 100k transitions is 160 steps), which the 500-epoch paper cap is not."""
    validation_fraction: float = 0.2
    """Expected fraction of new transitions put in each member's validation set."""
    persistency: float = 0.99
    """Weight of the old value in the rolling average of the validation loss (early stopping)."""
    early_stopping: bool = True
    """Stop members whose validation loss rises above its rolling average; False trains max_epochs."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """Adam's (beta1, beta2)."""
    adam_eps: float = 1e-8
    """Adam's epsilon."""

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ValueError(
                f"ModelTrainerConfig.learning_rate must be > 0, got {self.learning_rate}"
            )
        if self.batch_size <= 0:
            raise ValueError(f"ModelTrainerConfig.batch_size must be > 0, got {self.batch_size}")
        if self.max_epochs <= 0:
            raise ValueError(f"ModelTrainerConfig.max_epochs must be > 0, got {self.max_epochs}")
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool)
            or not isinstance(self.max_steps, int)
            or self.max_steps <= 0
        ):
            raise ValueError(
                f"ModelTrainerConfig.max_steps must be null or a positive int, got {self.max_steps!r}"
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"ModelTrainerConfig.validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if not 0.0 <= self.persistency < 1.0:
            raise ValueError(
                f"ModelTrainerConfig.persistency must be in [0, 1), got {self.persistency}"
            )
        b1, b2 = self.adam_betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(
                f"ModelTrainerConfig.adam_betas must be in [0, 1), got {self.adam_betas}"
            )


class MaskedAdam:
    """Adam over parameters with a leading member dim ``[K, ...]`` that updates only the members
    marked active (weights, moments and step counts of the others stay untouched)."""

    def __init__(
        self, params: list[Tensor], lr: float, betas: tuple[float, float], eps: float
    ) -> None:
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        k = params[0].shape[0]
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = torch.zeros(k, dtype=torch.float64, device=params[0].device)

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        """One update of the members where ``active [K]`` (bool) is True."""
        b1, b2 = self.betas
        self.steps += active.to(self.steps.dtype)
        t = self.steps.clamp(min=1.0)
        # per-member step size with bias correction; 0 for inactive members
        step_size = (self.lr * torch.sqrt(1 - b2**t) / (1 - b1**t)) * active.to(t.dtype)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            shape = (-1,) + (1,) * (p.ndim - 1)
            mask = active.view(shape)
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            m.copy_(torch.where(mask, b1 * m + (1 - b1) * grad, m))
            v.copy_(torch.where(mask, b2 * v + (1 - b2) * grad * grad, v))
            p.sub_(step_size.to(p.dtype).view(shape) * m / (v.sqrt() + self.eps))

    def state_dict(self) -> dict[str, Any]:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "steps": self.steps}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for dst, src in zip(
            self.exp_avg + self.exp_avg_sq, d["exp_avg"] + d["exp_avg_sq"], strict=True
        ):
            dst.copy_(src)
        self.steps.copy_(d["steps"])


class EnsembleTrainer:
    """Fits a :class:`DynamicsEnsemble` on a :class:`TransitionBuffer` (warm start: the ensemble's
    weights are never re-initialised, and Adam's moments carry over between fits)."""

    def __init__(
        self, ensemble: DynamicsEnsemble, config: ModelTrainerConfig, generator: torch.Generator
    ) -> None:
        self.ensemble = ensemble
        self.config = config
        self.generator = generator
        params = list(ensemble.v) + list(ensemble.g) + list(ensemble.b)
        self.optimizer = MaskedAdam(
            params, config.learning_rate, config.adam_betas, config.adam_eps
        )
        k = ensemble.ensemble_size
        # validation side of every transition id in [_split_start, _split_start + len(_is_val))
        self._split_start = 0
        self._is_val = torch.zeros(0, k, dtype=torch.bool, device=ensemble.device)

    # --- split ---------------------------------------------------------------------------------

    def _update_split(self, ids: Tensor) -> Tensor:
        """Assign sides to ids not seen before, forget ids no longer stored; ``[n, K]`` bool, True =
        validation, for ``ids [n]`` (consecutive, oldest first)."""
        k = self.ensemble.ensemble_size
        dev = self.ensemble.device
        if ids.numel() == 0:
            return torch.zeros(0, k, dtype=torch.bool, device=dev)
        first, end = int(ids[0]), int(ids[-1]) + 1
        known_end = self._split_start + self._is_val.shape[0]
        if first > known_end or first < self._split_start:  # a gap or a different buffer: restart
            self._split_start, self._is_val = first, self._is_val[:0]
            known_end = first
        if end > known_end:
            n = end - known_end
            gdev = self.generator.device
            f = self.config.validation_fraction * n
            n_val = math.floor(f)
            if torch.rand((), generator=self.generator, device=gdev).item() < f - n_val:
                n_val += 1
            order = torch.rand(k, n, generator=self.generator, device=gdev).argsort(dim=1)
            new = torch.zeros(k, n, dtype=torch.bool, device=gdev)
            new.scatter_(1, order[:, :n_val], True)
            self._is_val = torch.cat((self._is_val, new.T.to(dev)))
        drop = first - self._split_start
        self._is_val = self._is_val[drop:]
        self._split_start = first
        return self._is_val[: end - first]

    # --- fitting -------------------------------------------------------------------------------

    def fit(self, buffer: TransitionBuffer) -> dict[str, float]:
        """Recompute the normalisers over the whole buffer, then train (warm start) with per-member
        early stopping. Returns ``model/val_loss`` (mean over members of the final validation loss),
        ``model/val_loss_start`` (the same before this fit's first step), ``model/val_loss_<k>``,
        ``model/epochs_<k>``, ``model/epochs_mean``, ``model/train_loss`` (last epoch's mean)."""
        if len(buffer) < 2:
            raise ValueError(f"EnsembleTrainer.fit: need at least 2 transitions, got {len(buffer)}")
        dev = self.ensemble.device
        obs, act, next_obs = (t.to(dev) for t in buffer.tensors())
        is_val = self._update_split(buffer.ids().to(dev))
        self.ensemble.fit_normalizer(obs, act, next_obs)
        with torch.no_grad():
            x = self.ensemble.normalize_input(obs, act)
            y = self.ensemble.normalize_delta(obs, next_obs)
        return self.fit_arrays(x, y, is_val)

    def fit_arrays(self, x: Tensor, y: Tensor, is_val: Tensor) -> dict[str, float]:
        """Train on normalised data: ``x [n, in]``, targets ``y [n, obs]`` (shared) or ``[K, n, obs]``
        (one per member), ``is_val [n, K]`` (True = member k validates on row n)."""
        cfg = self.config
        ens = self.ensemble
        k = ens.ensemble_size
        dev = ens.device
        n = x.shape[0]
        if y.ndim == 2:
            y = y.expand(k, *y.shape)
        train_rows = [torch.nonzero(~is_val[:, j]).squeeze(1) for j in range(k)]
        val_rows = [torch.nonzero(is_val[:, j]).squeeze(1) for j in range(k)]
        if min(len(r) for r in train_rows) == 0:
            raise ValueError(f"EnsembleTrainer: a member has no training data ({n} transitions)")
        has_val = torch.tensor([len(r) > 0 for r in val_rows], device=dev)
        val_idx, val_weight = _padded(val_rows, dev)
        members = torch.arange(k, device=dev)[:, None]

        active = torch.ones(k, dtype=torch.bool, device=dev)
        epochs = torch.zeros(k, dtype=torch.long, device=dev)
        rolling = torch.full((k,), math.inf, device=dev)
        val_loss = self._val_loss(x, y, val_idx, val_weight)
        val_loss_start = val_loss.clone()
        train_loss = torch.full((k,), math.nan, device=dev)
        n_max = max(len(r) for r in train_rows)
        epoch_cap = self.epoch_cap(n_max)
        for _epoch in range(epoch_cap):
            order = self._epoch_order(train_rows, n_max)  # [K, n_max]
            loss_sum = torch.zeros(k, device=dev)
            batches = 0
            for start in range(0, n_max, cfg.batch_size):
                idx = order[:, start : start + cfg.batch_size]
                pred = ens(x[idx])
                per_member = (pred - y[members, idx]).pow(2).mean(dim=(1, 2))  # [K]
                ens.zero_grad(set_to_none=False)
                (per_member * active).sum().backward()
                self.optimizer.step(active)
                loss_sum += per_member.detach()
                batches += 1
            train_loss = torch.where(active, loss_sum / batches, train_loss)
            epochs += active.long()
            new_val = self._val_loss(x, y, val_idx, val_weight)
            val_loss = torch.where(active, new_val, val_loss)
            if cfg.early_stopping:
                first = torch.isinf(rolling)
                new_rolling = torch.where(
                    first,
                    1.5 * new_val,
                    cfg.persistency * rolling + (1 - cfg.persistency) * new_val,
                )
                stop = active & has_val & ~first & (new_rolling > rolling)
                rolling = torch.where(active, new_rolling, rolling)
                active = active & ~stop
                if not bool(active.any()):
                    break
        ens.zero_grad(set_to_none=True)
        metrics: dict[str, float] = {
            "model/val_loss": float(val_loss[has_val].mean()) if bool(has_val.any()) else math.nan,
            "model/val_loss_start": float(val_loss_start[has_val].mean())
            if bool(has_val.any())
            else math.nan,
            "model/train_loss": float(train_loss.mean()),
            "model/epochs_mean": float(epochs.float().mean()),
            "model/epoch_cap": float(epoch_cap),
        }
        for j in range(k):
            metrics[f"model/val_loss_{j}"] = float(val_loss[j]) if bool(has_val[j]) else math.nan
            metrics[f"model/epochs_{j}"] = float(epochs[j])
        return metrics

    def epoch_cap(self, n_train: int) -> int:
        """Most epochs this fit may run when the largest member train set has ``n_train`` rows:
        ``max_epochs``, lowered by the ``max_steps`` budget (whole epochs, at least one)."""
        cfg = self.config
        if cfg.max_steps is None:
            return cfg.max_epochs
        steps_per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
        return max(1, min(cfg.max_epochs, cfg.max_steps // steps_per_epoch))

    def _epoch_order(self, train_rows: list[Tensor], n_max: int) -> Tensor:
        """``[K, n_max]``: a fresh random order of each member's train rows, members with fewer rows
        padded by random repeats of their own rows."""
        gdev = self.generator.device
        dev = self.ensemble.device
        out = []
        for rows in train_rows:
            m = rows.shape[0]
            perm = torch.randperm(m, generator=self.generator, device=gdev).to(dev)
            if m < n_max:
                extra = torch.randint(m, (n_max - m,), generator=self.generator, device=gdev).to(
                    dev
                )
                perm = torch.cat((perm, extra))
            out.append(rows[perm])
        return torch.stack(out)

    @torch.no_grad()
    def _val_loss(self, x: Tensor, y: Tensor, val_idx: Tensor, weight: Tensor) -> Tensor:
        """Per-member mean validation MSE ``[K]`` (``inf`` for a member without validation data)."""
        k = val_idx.shape[0]
        members = torch.arange(k, device=x.device)[:, None]
        total = torch.zeros(k, device=x.device)
        for start in range(0, val_idx.shape[1], _VAL_CHUNK):
            idx = val_idx[:, start : start + _VAL_CHUNK]
            w = weight[:, start : start + _VAL_CHUNK]
            err = (self.ensemble(x[idx]) - y[members, idx]).pow(2).mean(dim=2)  # [K, chunk]
            total += (err * w).sum(dim=1)
        count = weight.sum(dim=1)
        return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.inf))

    # --- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Adam state and the train/validation sides of the stored transitions (the ensemble's own
        weights and normalisers are in ``ensemble.state_dict()``)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "split_start": self._split_start,
            "is_val": self._is_val.cpu(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(d["optimizer"])
        self._split_start = int(d["split_start"])
        self._is_val = d["is_val"].to(self.ensemble.device)


def _padded(rows: list[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
    """Ragged index lists -> ``idx [K, m]`` (padded with 0) and ``weight [K, m]`` (1 real, 0 pad)."""
    m = max(1, max(len(r) for r in rows))
    idx = torch.zeros(len(rows), m, dtype=torch.long, device=device)
    weight = torch.zeros(len(rows), m, device=device)
    for j, r in enumerate(rows):
        idx[j, : len(r)] = r
        weight[j, : len(r)] = 1.0
    return idx, weight
