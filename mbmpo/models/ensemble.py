"""The dynamics ensemble: K MLPs evaluated as ONE batched module (weights ``[K, in, out]``).

Each member maps the normalised input ``[(s - mu_s) / sd_s, (a - mu_a) / sd_a]`` to the normalised
state change ``(s' - s - mu_d) / sd_d``; the prediction is ``s' = clip(s + denorm(delta), +-clip)``.
Weight normalisation (Salimans & Kingma 2016) is applied per member and per output unit:
``w[k, :, j] = g[k, j] * v[k, :, j] / |v[k, :, j]|``.

For rollouts, :meth:`DynamicsEnsemble.frozen` computes the effective weights once and folds the
output de-normalisation into the last layer, so a rollout step is one input normalisation,
``len(hidden_sizes) + 1`` ``baddbmm`` calls and the activations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

_MIN_STD = 1e-6


def _safe_std(x: Tensor) -> Tensor:
    """Per-column std of ``x [n, d]``; columns with (near) zero spread get 1 so they stay finite."""
    std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(x[0])
    return torch.where(std < _MIN_STD, torch.ones_like(std), std)


@dataclass(frozen=True)
class FrozenEnsemble:
    """A no-grad snapshot of the ensemble: effective weights, output de-normalisation folded in.

    ``weights[l]`` is ``[K, in_l, out_l]``, ``biases[l]`` is ``[K, 1, out_l]``.
    """

    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]
    in_mean: Tensor
    """``[obs + act]`` input normaliser mean."""
    in_std: Tensor
    """``[obs + act]`` input normaliser std."""
    obs_dim: int
    output_clip: float

    @property
    def ensemble_size(self) -> int:
        return self.weights[0].shape[0]

    def step(self, obs: Tensor, act: Tensor) -> Tensor:
        """``obs [K, B, obs], act [K, B, act] -> next_obs [K, B, obs]``; row group k by member k."""
        x = torch.cat((obs, act), dim=-1).sub_(self.in_mean).div_(self.in_std)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu_(x)
        return (obs + x).clamp_(-self.output_clip, self.output_clip)


class DynamicsEnsemble(nn.Module):
    """K dynamics MLPs as one batched module.

    Parameters per layer ``l``: ``v[l] [K, in, out]``, ``g[l] [K, 1, out]`` (weight norm only),
    ``b[l] [K, 1, out]``. Buffers (saved in ``state_dict``): the normalisers below.
    """

    obs_mean: Tensor
    obs_std: Tensor
    act_mean: Tensor
    act_std: Tensor
    delta_mean: Tensor
    delta_std: Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        ensemble_size: int = 5,
        hidden_sizes: Sequence[int] = (512, 512),
        weight_norm: bool = True,
        output_clip: float = 1000.0,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        """
        :param generator: initialises the weights (reproducible); the global RNG when ``None``.
        """
        super().__init__()
        if obs_dim <= 0 or act_dim <= 0:
            raise ValueError(
                f"DynamicsEnsemble: obs_dim and act_dim must be > 0, got {obs_dim}, {act_dim}"
            )
        if ensemble_size <= 0:
            raise ValueError(f"DynamicsEnsemble: ensemble_size must be > 0, got {ensemble_size}")
        if any(h <= 0 for h in hidden_sizes):
            raise ValueError(
                f"DynamicsEnsemble: hidden_sizes must be positive, got {tuple(hidden_sizes)}"
            )
        if output_clip <= 0:
            raise ValueError(f"DynamicsEnsemble: output_clip must be > 0, got {output_clip}")
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.ensemble_size = ensemble_size
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.weight_norm = weight_norm
        self.output_clip = float(output_clip)
        sizes = [obs_dim + act_dim, *self.hidden_sizes, obs_dim]
        device = torch.device(device)
        k = ensemble_size
        self.v = nn.ParameterList()
        self.g = nn.ParameterList()
        self.b = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            # PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
            bound = 1.0 / math.sqrt(fan_in)
            v = torch.empty(k, fan_in, fan_out, device=device)
            v.uniform_(-bound, bound, generator=generator)
            b = torch.empty(k, 1, fan_out, device=device).uniform_(
                -bound, bound, generator=generator
            )
            self.v.append(nn.Parameter(v))
            self.b.append(nn.Parameter(b))
            if weight_norm:  # start at w = v
                self.g.append(nn.Parameter(v.norm(dim=1, keepdim=True).clone()))
        self.register_buffer("obs_mean", torch.zeros(obs_dim, device=device))
        self.register_buffer("obs_std", torch.ones(obs_dim, device=device))
        self.register_buffer("act_mean", torch.zeros(act_dim, device=device))
        self.register_buffer("act_std", torch.ones(act_dim, device=device))
        self.register_buffer("delta_mean", torch.zeros(obs_dim, device=device))
        self.register_buffer("delta_std", torch.ones(obs_dim, device=device))

    @property
    def device(self) -> torch.device:
        return self.v[0].device

    # --- weights -------------------------------------------------------------------------------

    def layer_weights(self) -> list[tuple[Tensor, Tensor]]:
        """Effective ``(w [K, in, out], b [K, 1, out])`` per layer (differentiable)."""
        out = []
        for i, (v, b) in enumerate(zip(self.v, self.b, strict=True)):
            w = self.g[i] * v / v.norm(dim=1, keepdim=True) if self.weight_norm else v
            out.append((w, b))
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Normalised input ``[K, B, obs + act]`` -> normalised delta ``[K, B, obs]``."""
        layers = self.layer_weights()
        for i, (w, b) in enumerate(layers):
            x = torch.baddbmm(b, x, w)
            if i < len(layers) - 1:
                x = torch.relu(x)
        return x

    # --- normalisation -------------------------------------------------------------------------

    @torch.no_grad()
    def fit_normalizer(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> None:
        """Recompute the obs/act/delta mean and std from transitions ``[n, obs], [n, act], [n, obs]``."""
        obs, act, next_obs = (t.to(self.device) for t in (obs, act, next_obs))
        delta = next_obs - obs
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(_safe_std(obs))
        self.act_mean.copy_(act.mean(0))
        self.act_std.copy_(_safe_std(act))
        self.delta_mean.copy_(delta.mean(0))
        self.delta_std.copy_(_safe_std(delta))

    def normalize_input(self, obs: Tensor, act: Tensor) -> Tensor:
        """``obs [..., obs], act [..., act] -> [..., obs + act]`` normalised model input."""
        return torch.cat(
            ((obs - self.obs_mean) / self.obs_std, (act - self.act_mean) / self.act_std), dim=-1
        )

    def normalize_delta(self, obs: Tensor, next_obs: Tensor) -> Tensor:
        """Training target ``[..., obs]``: the normalised state change."""
        return (next_obs - obs - self.delta_mean) / self.delta_std

    # --- prediction ----------------------------------------------------------------------------

    def predict(self, obs: Tensor, act: Tensor) -> Tensor:
        """``obs [K, B, obs], act [K, B, act] -> next_obs [K, B, obs]``; row group k by member k."""
        k = self.ensemble_size
        if obs.ndim != 3 or obs.shape[0] != k or act.shape[:2] != obs.shape[:2]:
            raise ValueError(
                f"DynamicsEnsemble.predict: expected obs [K={k}, B, {self.obs_dim}] and act "
                f"[K, B, {self.act_dim}], got {tuple(obs.shape)} and {tuple(act.shape)}"
            )
        delta = self(self.normalize_input(obs, act)) * self.delta_std + self.delta_mean
        return (obs + delta).clamp(-self.output_clip, self.output_clip)

    def predict_random(self, obs: Tensor, act: Tensor, generator: torch.Generator) -> Tensor:
        """``obs [B, obs], act [B, act] -> [B, obs]``, each row by a random member.

        Balanced: the rows are randomly permuted and dealt to the members in turn, so every member
        gets ``ceil(B / K)`` or ``floor(B / K)`` rows and the cost is one ensemble pass.
        """
        idx = balanced_assignment(obs.shape[0], self.ensemble_size, generator, self.device)
        return grouped_predict(self.predict, obs, act, idx)

    def predict_mean(self, obs: Tensor, act: Tensor) -> Tensor:
        """``obs [B, obs], act [B, act] -> [B, obs]``: the mean of all members' predictions."""
        k = self.ensemble_size
        return self.predict(obs.expand(k, *obs.shape), act.expand(k, *act.shape)).mean(0)

    @torch.no_grad()
    def frozen(self) -> FrozenEnsemble:
        """The effective weights (weight norm applied once) with the output de-normalisation
        folded into the last layer, for fast no-grad rollouts:
        ``(h @ W + b) * sd_d + mu_d = h @ (W * sd_d) + (b * sd_d + mu_d)``.

        The input normalisation is not folded into the first layer: ``b - (mu / sd) @ W`` would
        cancel badly in float32 for a column with a large mean and a small std, and normalising
        ``[K, B, obs + act]`` costs next to nothing.
        """
        layers = [(w.detach().clone(), b.detach().clone()) for w, b in self.layer_weights()]
        wl, bl = layers[-1]
        layers[-1] = (wl * self.delta_std, bl * self.delta_std + self.delta_mean)
        return FrozenEnsemble(
            weights=tuple(w.contiguous() for w, _ in layers),
            biases=tuple(b.contiguous() for _, b in layers),
            in_mean=torch.cat((self.obs_mean, self.act_mean)),
            in_std=torch.cat((self.obs_std, self.act_std)),
            obs_dim=self.obs_dim,
            output_clip=self.output_clip,
        )


def balanced_assignment(
    rows: int, members: int, generator: torch.Generator, device: torch.device | str
) -> Tensor:
    """Row indices ``[K, G]`` (``G = ceil(rows / K)``) dealing a random permutation of ``rows`` rows
    to ``K`` members in turn; when ``rows % K != 0`` the last few slots repeat rows (their results
    are discarded by :func:`grouped_predict`). With ``rows >= K`` every member gets a real row."""
    g = -(-rows // members)
    perm = torch.randperm(rows, generator=generator, device=generator.device).to(device)
    pad = g * members - rows
    if pad:
        perm = torch.cat((perm, perm[:pad]))
    return perm.view(g, members).T


def grouped_predict(
    predict: Callable[[Tensor, Tensor], Tensor], obs: Tensor, act: Tensor, idx: Tensor
) -> Tensor:
    """Evaluate rows ``obs [B, obs], act [B, act]`` grouped by member as ``idx [K, G]`` says
    (from :func:`balanced_assignment`) with ``predict([K, G, obs], [K, G, act]) -> [K, G, obs]``;
    returns ``[B, obs]`` in the original row order."""
    rows = obs.shape[0]
    pred = predict(obs[idx], act[idx])  # [K, G, obs]
    flat = pred.transpose(0, 1).reshape(-1, pred.shape[-1])[:rows]  # slot order = idx.T.flatten()
    out = torch.empty_like(flat)
    out[idx.T.reshape(-1)[:rows]] = flat
    return out
