"""Shared test settings: headless plotting, offline W&B, one torch thread, results under tmp dirs."""

import os
from collections.abc import Iterator

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# Test tensors are tiny: one intra-op thread is faster, and far faster on a loaded machine. Set at
# import so module- and session-scoped fixtures get it too.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Back to one thread after every test (a run under test may set its own thread count)."""
    yield
    torch.set_num_threads(1)
