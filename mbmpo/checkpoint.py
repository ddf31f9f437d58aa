"""Atomic checkpoints in a run folder, and capturing/restoring every source of randomness.

A checkpoint is one ``torch.save`` file, ``<run_dir>/checkpoint.pt``, written to a temporary file
in the same folder, flushed to disk and then renamed over the old one, so a run killed at any
moment leaves either the previous or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where the checkpoint of ``run_dir`` lives."""
    return Path(run_dir) / CHECKPOINT_NAME


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``run_dir/checkpoint.pt`` (creating ``run_dir``)."""
    path = checkpoint_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    payload = {"format_version": FORMAT_VERSION, **state}
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: str | Path) -> dict[str, Any] | None:
    """The state saved in ``run_dir``, or ``None`` when there is no checkpoint.

    :raises ValueError: when the file was written by an incompatible format version.
    """
    path = checkpoint_path(run_dir)
    if not path.exists():
        return None
    # our own file: it holds numpy RNG states and python objects, hence weights_only=False
    state = torch.load(path, map_location="cpu", weights_only=False)
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {version!r}, expected {FORMAT_VERSION}")
    return state


def global_rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def numpy_generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """A picklable copy of a numpy ``Generator``'s state."""
    return dict(rng.bit_generator.state)


def set_numpy_generator_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state


def real_sampler_state(sampler: Any) -> dict[str, Any]:
    """State of a :class:`~mbmpo.rollouts.RealSampler`: its run counter (which derives the env reset
    seeds, so the envs' own RNGs need no saving: every episode starts with a seeded reset) and its
    random-action generator."""
    if hasattr(sampler, "state_dict"):
        return dict(sampler.state_dict())
    return {"runs": int(sampler._runs), "rng": numpy_generator_state(sampler._rng)}


def load_real_sampler_state(sampler: Any, state: dict[str, Any]) -> None:
    if hasattr(sampler, "load_state_dict"):
        sampler.load_state_dict(state)
        return
    sampler._runs = int(state["runs"])
    set_numpy_generator_state(sampler._rng, state["rng"])


def start_sampler_state(sampler: Any) -> dict[str, Any]:
    """State of a :class:`~mbmpo.rollouts.StartStateSampler` (its reset-seed generator)."""
    if hasattr(sampler, "state_dict"):
        return dict(sampler.state_dict())
    return {"rng": numpy_generator_state(sampler._rng)}


def load_start_sampler_state(sampler: Any, state: dict[str, Any]) -> None:
    if hasattr(sampler, "load_state_dict"):
        sampler.load_state_dict(state)
        return
    set_numpy_generator_state(sampler._rng, state["rng"])
