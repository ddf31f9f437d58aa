"""Conjugate gradient for ``A x = b`` with ``A`` symmetric positive definite, given only ``A v``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """Approximate ``A^-1 b`` ``[n]`` after at most ``iters`` iterations (rllab's stopping rule:
    stop once the squared residual norm falls below ``residual_tol``)."""
    return conjugate_gradient_with_product(matvec, b, iters, residual_tol)[0]


def conjugate_gradient_with_product(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """Like :func:`conjugate_gradient`, also returning ``A x = b - r`` from CG's own residual (so
    the TRPO step size needs no extra matrix-vector product)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if float(rr) < residual_tol:
            break
        ap = matvec(p)
        alpha = rr / torch.dot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, b - r
