"""The MAML inner step and the meta-objective's gradient and Fisher-vector products (MB-MPO).

Per task ``i``: ``theta'_i = theta - alpha * grad L_in_i(theta)`` with
``L_in_i = -mean(log pi_theta(a|s) A)`` over task ``i``'s pre-update samples. The outer objective
is ``L_out = mean_i -mean[pi_{theta'_i}(a|s) / pi_{theta'_i,old}(a|s) A']`` over the post-update
samples, with the trust region ``mean KL(pi_{theta'_i,old} || pi_{theta'_i}) <= max_kl``.

Everything is exact second order, with the chain rule through the inner step written out:
``J_i = d theta'_i / d(theta, alpha) = [I - diag(alpha) H_i, -diag(g_i)]`` where ``g_i, H_i`` are the
gradient and Hessian of ``L_in_i`` (exact Hessian-vector products, written out in
:mod:`mbmpo.optim.inner`; the tests check them against autograd's double backward and finite
differences). Then

- gradient: ``sum_i J_i^T u_i`` with ``u_i = dL_out / d theta'_i``;
- Fisher-vector product: ``sum_i J_i^T F_i J_i v`` with ``F_i`` the Hessian of the mean KL in
  ``theta'`` (the Gaussian's Fisher, :meth:`MetaObjective._fisher`). This is the exact Hessian of the KL in ``(theta, alpha)`` at the
  current point: the KL's gradient in ``theta'`` vanishes there, so no third-order term remains.

All tasks are processed together: the policy parameters carry a leading ``[T]`` task dim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from mbmpo.optim.inner import InnerLossCurvature
from mbmpo.policies.gaussian_mlp import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob

ParamDict = dict[str, Tensor]


@dataclass(frozen=True)
class TaskBatch:
    """Samples of T tasks, flattened over trajectories and time (``M = N * H``)."""

    obs: Tensor
    """``[T, M, obs]``"""
    act: Tensor
    """``[T, M, act]``"""
    adv: Tensor
    """``[T, M]`` advantages (0 at dead steps)."""
    mask: Tensor
    """``[T, M]`` alive mask."""

    @property
    def num_tasks(self) -> int:
        return int(self.obs.shape[0])


def masked_task_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Per-task mean ``[T]`` of ``x [T, M]`` over alive entries (dead entries may hold anything)."""
    x = torch.where(mask > 0, x, torch.zeros_like(x))
    return x.sum(1) / mask.sum(1).clamp(min=1.0)


def inner_loss(policy: GaussianMLPPolicy, params: Mapping[str, Tensor], batch: TaskBatch) -> Tensor:
    """Per-task vanilla policy-gradient loss ``[T]``: ``-mean(log pi(a|s) A)`` over alive steps."""
    logp = policy.log_prob(batch.obs, batch.act, params)  # [T, M]
    return masked_task_mean(-logp * batch.adv, batch.mask)


def flatten(d: Mapping[str, Tensor]) -> Tensor:
    """Concatenate the tensors of ``d`` (in its order) into one flat vector."""
    return torch.cat([t.reshape(-1) for t in d.values()])


def unflatten(x: Tensor, like: Mapping[str, Tensor]) -> ParamDict:
    """Split flat ``x`` into tensors shaped like those of ``like`` (same order)."""
    out: ParamDict = {}
    i = 0
    for k, t in like.items():
        n = t.numel()
        out[k] = x[i : i + n].reshape(t.shape)
        i += n
    if i != x.numel():
        raise ValueError(f"flat vector has {x.numel()} entries, expected {i}")
    return out


def _per_task(theta: Mapping[str, Tensor], num_tasks: int) -> ParamDict:
    """A leaf copy of shared ``theta`` for each task: ``[T, ...]`` tensors requiring grad."""
    return {
        k: v.detach().unsqueeze(0).expand(num_tasks, *v.shape).clone().requires_grad_(True)
        for k, v in theta.items()
    }


def adapt(
    policy: GaussianMLPPolicy,
    theta: Mapping[str, Tensor],
    step_sizes: Mapping[str, Tensor],
    pre: TaskBatch,
) -> ParamDict:
    """The adapted parameters ``theta'_i`` ``[T, ...]`` (first order, detached)."""
    phi = _per_task(theta, pre.num_tasks)
    with torch.enable_grad():
        loss = inner_loss(policy, phi, pre).sum()
        grads = torch.autograd.grad(loss, list(phi.values()))
    return {k: (phi[k] - step_sizes[k] * g).detach() for (k, g) in zip(phi, grads, strict=True)}


class MetaObjective:
    """The MB-MPO outer objective around the current parameters, for one TRPO step.

    The optimised flat vector is ``x = [theta, alpha]`` when step sizes are learnable, else
    ``x = [theta]``. ``pre=None`` means no adaptation (``theta'_i = theta``, as with alpha = 0).

    Usage: build with the pre-update samples; roll out the post-update samples with
    :attr:`adapted`; :meth:`set_post`; then :meth:`loss_and_grad`, :meth:`fvp`, :meth:`loss_kl`.
    """

    def __init__(
        self,
        policy: GaussianMLPPolicy,
        theta: Mapping[str, Tensor],
        step_sizes: Mapping[str, Tensor],
        learn_step_sizes: bool,
        pre: TaskBatch | None,
        num_tasks: int,
    ) -> None:
        self.policy = policy
        self.theta = {k: v.detach() for k, v in theta.items()}
        self.alpha = {k: v.detach() for k, v in step_sizes.items()}
        self.learn_step_sizes = learn_step_sizes
        self.pre = pre
        self.num_tasks = num_tasks
        if pre is not None and pre.num_tasks != num_tasks:
            raise ValueError(f"pre-update batch has {pre.num_tasks} tasks, expected {num_tasks}")
        self._g_in: ParamDict = {}
        if pre is None:
            self.adapted = {
                k: v.unsqueeze(0).expand(num_tasks, *v.shape).clone() for k, v in self.theta.items()
            }
            self.inner_loss_value = float("nan")
        else:
            phi = {
                k: v.unsqueeze(0).expand(num_tasks, *v.shape).contiguous()
                for k, v in self.theta.items()
            }
            curv = InnerLossCurvature(policy, phi, pre.obs, pre.act, pre.adv, pre.mask)
            self._curvature = curv
            self._g_in = curv.grad
            self.adapted = {k: phi[k] - self.alpha[k] * self._g_in[k] for k in phi}
            loss = curv.loss
            self.inner_loss_value = float(loss.detach().mean())
        self.post: TaskBatch | None = None

    # ----- the post-update part ---------------------------------------------------------------
    def set_post(self, post: TaskBatch) -> None:
        """Attach the post-update samples (collected with :attr:`adapted`) and build the KL graph."""
        if post.num_tasks != self.num_tasks:
            raise ValueError(
                f"post-update batch has {post.num_tasks} tasks, expected {self.num_tasks}"
            )
        self.post = post
        with torch.no_grad():
            mean_old, log_std_old = self.policy.mean_log_std(post.obs, self.adapted)
            self._mean_old = mean_old
            self._log_std_old = log_std_old
            self._logp_old = gaussian_log_prob(post.act, mean_old, log_std_old)
        leaf = {k: v.clone().requires_grad_(True) for k, v in self.adapted.items()}
        with torch.enable_grad():
            mean, log_std = self.policy.mean_log_std(post.obs, leaf)
            loss, _ = self._loss_kl_from(mean, log_std)
            u = torch.autograd.grad(loss, list(leaf.values()))
        self._leaf = leaf
        self._u = dict(zip(leaf, u, strict=True))
        with torch.no_grad():
            self._inputs = self.policy.layer_inputs(post.obs, self.adapted)
            self._dtanh = [1.0 - h * h for h in self._inputs[1:]]
            n = post.mask.sum().clamp(min=1.0)
            # Hessian of the mean KL in (mean, log_std) at old == new: diag(1/var)/n per alive
            # sample for the mean, 2 (alive samples)/n per task for each log-std entry
            self._mean_weight = (post.mask / n).unsqueeze(-1) * torch.exp(-2.0 * log_std.detach())
            self._log_std_weight = (2.0 * post.mask.sum(1) / n).unsqueeze(-1)  # [T, 1]
        self.loss_before = float(loss.detach())

    def _post_loss_kl(self, adapted: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Surrogate loss and mean KL (scalars) of post-update samples under ``adapted [T, ...]``."""
        assert self.post is not None, "call set_post first"
        mean, log_std = self.policy.mean_log_std(self.post.obs, adapted)
        return self._loss_kl_from(mean, log_std)

    def _loss_kl_from(self, mean: Tensor, log_std: Tensor) -> tuple[Tensor, Tensor]:
        post = self.post
        assert post is not None
        logp = gaussian_log_prob(post.act, mean, log_std)
        ratio = torch.exp(logp - self._logp_old)
        loss = masked_task_mean(-ratio * post.adv, post.mask).mean()
        kl_all = gaussian_kl(self._mean_old, self._log_std_old, mean, log_std)  # [T, M]
        kl_all = torch.where(post.mask > 0, kl_all, torch.zeros_like(kl_all))
        kl = kl_all.sum() / post.mask.sum().clamp(min=1.0)
        return loss, kl

    # ----- the chain rule through the inner step ------------------------------------------------
    def _inner_hvp(self, w: Mapping[str, Tensor]) -> ParamDict:
        """``H_i w_i`` ``[T, ...]`` for per-task ``w [T, ...]`` (exact, written out)."""
        return self._curvature.hvp(w)

    def _jvp(self, v: Tensor) -> ParamDict:
        """``J_i v`` ``[T, ...]`` for flat ``v`` in x-space."""
        v_theta = unflatten(v[: self._n_theta], self.theta)
        t = self.num_tasks
        jv = {k: val.unsqueeze(0).expand(t, *val.shape) for k, val in v_theta.items()}
        if self.pre is None:
            return jv
        h = self._inner_hvp(jv)
        out = {k: jv[k] - self.alpha[k] * h[k] for k in jv}
        if self.learn_step_sizes:
            v_alpha = unflatten(v[self._n_theta :], self.alpha)
            out = {k: out[k] - self._g_in[k] * v_alpha[k] for k in out}
        return out

    def _vjp(self, u: Mapping[str, Tensor]) -> Tensor:
        """``sum_i J_i^T u_i`` (flat, x-space) for per-task ``u [T, ...]``."""
        if self.pre is None:
            return flatten({k: val.sum(0) for k, val in u.items()})
        h = self._inner_hvp({k: self.alpha[k] * u[k] for k in u})
        d_theta = {k: (u[k] - h[k]).sum(0) for k in u}
        parts = [flatten(d_theta)]
        if self.learn_step_sizes:
            parts.append(flatten({k: (-self._g_in[k] * u[k]).sum(0) for k in u}))
        return torch.cat(parts)

    @property
    def _n_theta(self) -> int:
        return sum(v.numel() for v in self.theta.values())

    # ----- what TRPO needs ------------------------------------------------------------------------
    def x0(self) -> Tensor:
        """The current flat vector ``x``."""
        parts = [flatten(self.theta)]
        if self.learn_step_sizes:
            parts.append(flatten(self.alpha))
        return torch.cat(parts)

    def loss_and_grad(self) -> tuple[float, Tensor]:
        """Outer loss and its exact gradient in x-space at the current point."""
        return self.loss_before, self._vjp(self._u)

    def _fisher(self, w: Mapping[str, Tensor]) -> ParamDict:
        """``F_i w_i`` ``[T, ...]``: the Hessian of the mean KL in ``theta'`` at ``theta'_old``.

        For a Gaussian policy it is ``J_mu^T diag(1/var) J_mu / n`` for the MLP (``J_mu w`` and
        ``J_mu^T`` written out over cached activations) and
        ``2 (alive samples) / n`` on the log-std (mean/log-std cross terms vanish at old == new).
        """
        with torch.no_grad():
            pol, inputs, dtanh = self.policy, self._inputs, self._dtanh
            rmu = pol.mean_jvp(inputs, dtanh, self.adapted, w)  # [T, M, act]
            out = pol.mean_vjp(inputs, dtanh, self.adapted, rmu.mul_(self._mean_weight))
            out["log_std"] = self._log_std_weight * w["log_std"]
        return out

    def fvp(self, v: Tensor) -> Tensor:
        """Hessian of the mean KL in x-space times ``v`` (no damping)."""
        fjv = self._fisher(self._jvp(v))
        return self._vjp({k: fjv[k] for k in self._leaf})

    def split(self, x: Tensor) -> tuple[ParamDict, ParamDict]:
        """``(theta, alpha)`` dicts from flat ``x`` (alpha is the fixed one when not learnable)."""
        theta = unflatten(x[: self._n_theta], self.theta)
        alpha = unflatten(x[self._n_theta :], self.alpha) if self.learn_step_sizes else self.alpha
        return theta, alpha

    def evaluate(self, x: Tensor, differentiable: bool = False) -> tuple[Tensor, Tensor]:
        """Outer loss and mean KL at ``x`` (re-running the inner step at ``x``).

        With ``differentiable=True`` the result can be differentiated in ``x`` to any order
        (used by the tests as an independent reference).
        """
        theta, alpha = self.split(x)
        t = self.num_tasks
        with torch.enable_grad():
            if differentiable:
                phi = {k: v.unsqueeze(0).expand(t, *v.shape) for k, v in theta.items()}
            else:
                phi = _per_task(theta, t)
            if self.pre is None:
                adapted = phi
            else:
                loss_in = inner_loss(self.policy, phi, self.pre).sum()
                grads = torch.autograd.grad(
                    loss_in, list(phi.values()), create_graph=differentiable
                )
                adapted = {k: phi[k] - alpha[k] * g for (k, g) in zip(phi, grads, strict=True)}
            if not differentiable:
                adapted = {k: v.detach() for k, v in adapted.items()}
            with torch.set_grad_enabled(differentiable):
                return self._post_loss_kl(adapted)

    def loss_kl(self, x: Tensor) -> tuple[float, float]:
        """``(loss, kl)`` as floats at candidate ``x`` (for the line search)."""
        loss, kl = self.evaluate(x)
        return float(loss), float(kl)
