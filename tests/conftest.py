"""Shared test settings: headless plotting, offline W&B, and results written under tmp dirs."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# Tests use tiny tensors: one intra-op thread is faster (and far faster on a loaded machine).
import torch  # noqa: E402

torch.set_num_threads(1)
