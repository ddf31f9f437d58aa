"""Helpers shared by the ME-TRPO and MB-MPC tests: hand-made ensembles on the point env, a tracker
that dies mid-run, and row comparison without timings."""

from __future__ import annotations

from typing import Any

import torch

from mbmpo.envs.point import STEP
from mbmpo.models import DynamicsEnsemble
from mbmpo.protocols import MemoryTracker


class Killed(Exception):
    """Stands in for the process being killed."""


class KillingTracker(MemoryTracker):
    """Raises on the ``kill_at``-th log call (before that iteration's checkpoint is written)."""

    def __init__(self, kill_at: int) -> None:
        super().__init__()
        self.kill_at = kill_at

    def log(self, metrics: Any, step: int) -> None:
        if len(self.rows) == self.kill_at:
            raise Killed
        super().log(metrics, step)


def no_time(rows: list[tuple[int, dict[str, float]]]) -> list[tuple[int, dict[str, float]]]:
    """Rows without the ``time/...`` keys (wall-clock values differ between runs)."""
    return [(s, {k: v for k, v in r.items() if not k.startswith("time/")}) for s, r in rows]


@torch.no_grad()
def point_ensemble(
    drifts: list[tuple[float, float]], action_gain: float = STEP
) -> DynamicsEnsemble:
    """An exact hand-made ensemble for the point env: member k predicts
    ``p' = p + action_gain * a + drifts[k]`` for ``a`` in [-1, 1]^2.

    One hidden ReLU layer of 4 units computes ``[a0, a1, -a0, -a1]^+``; the output layer takes
    ``action_gain * (h0 - h2, h1 - h3)`` plus the member's drift as bias. The normaliser is the
    identity (mean 0, std 1), weight normalisation is off.
    """
    k = len(drifts)
    ens = DynamicsEnsemble(2, 2, ensemble_size=k, hidden_sizes=(4,), weight_norm=False)
    w0 = torch.zeros(4, 4)  # inputs [p0, p1, a0, a1] -> hidden
    w0[2, 0], w0[3, 1], w0[2, 2], w0[3, 3] = 1.0, 1.0, -1.0, -1.0
    w1 = torch.zeros(4, 2)
    w1[0, 0], w1[2, 0], w1[1, 1], w1[3, 1] = action_gain, -action_gain, action_gain, -action_gain
    ens.v[0].copy_(w0.expand(k, 4, 4))
    ens.b[0].zero_()
    ens.v[1].copy_(w1.expand(k, 4, 2))
    ens.b[1].copy_(torch.tensor(drifts, dtype=torch.float32).view(k, 1, 2))
    return ens
