"""Helpers shared by the baselines: config field checks, derived seeds, atomic files, evaluation.

Nothing here depends on stable-baselines3, so the model-based baselines can use it too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

# Independent random streams derived from a run's seed (see :func:`derive_seed`).
STREAM_TRAIN_RESET = 1
"""Resets of the training envs at the start of each training chunk."""
STREAM_EVAL = 2
"""Start states of evaluation episodes."""


def derive_seed(seed: int, stream: int, *index: int) -> int:
    """A 31-bit seed determined by ``(seed, stream, *index)``, independent across streams/indices."""
    # a non-zero last word: SeedSequence does not tell [.., 0] from [..] (trailing zeros)
    words = [int(seed) & 0xFFFFFFFF, int(stream), *(int(i) for i in index), len(index) + 1]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint32)[0] >> 1)


def check_field_types(obj: Any, where: str) -> None:
    """Check (and normalise) the field types of the frozen config dataclass ``obj``.

    Values from YAML are often of the wrong kind: ``1e-3`` without a dot is a *string* in YAML 1.1,
    lists arrive for tuples, ints for floats.  Ints are accepted for ``float`` fields (and converted);
    bools are never accepted for numbers.  Supported annotations: ``int``, ``float``, ``bool``,
    ``str``, ``tuple[int, ...]`` and ``X | None`` of those.

    :raises ValueError: naming ``where``, the field, the expected type and the value given.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        ok, converted = _conform(hints[f.name], value)
        if not ok:
            hint = "; a number in quotes is a string in YAML" if isinstance(value, str) else ""
            raise ValueError(
                f"{where}: field {f.name!r} must be {_type_name(hints[f.name])}, "
                f"got {value!r} ({type(value).__name__}){hint}"
            )
        if converted is not value:
            object.__setattr__(obj, f.name, converted)


def _conform(tp: Any, value: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, conv = _conform(arg, value)
            if ok:
                return True, conv
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)):
            return False, value
        elem = args[0]
        items = []
        for v in value:
            ok, conv = _conform(elem, v)
            if not ok:
                return False, value
            items.append(conv)
        return True, tuple(items)
    if tp is bool:
        return isinstance(value, (bool, np.bool_)), bool(value) if isinstance(
            value, np.bool_
        ) else value
    if tp is int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            return False, value
        return True, int(value)
    if tp is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            return False, value
        return True, float(value)
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported config annotation {tp!r}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an int", float: "a float", bool: "a bool", str: "a string"}.get(tp, str(tp))


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def evaluate(
    act: Callable[[np.ndarray], np.ndarray],
    env: gym.Env,
    episode_seeds: list[int],
) -> np.ndarray:
    """Undiscounted returns ``[len(episode_seeds)]`` of ``act`` on ``env``, one episode per seed.

    ``act`` maps one raw observation ``[obs]`` to one action ``[act]``; episodes end on termination
    or on the env's time limit.

    :raises RuntimeError: if an episode does not end within 10^6 steps (a missing time limit).
    """
    returns = np.empty(len(episode_seeds), dtype=np.float64)
    for i, ep_seed in enumerate(episode_seeds):
        obs, _ = env.reset(seed=int(ep_seed))
        total = 0.0
        for _ in range(1_000_000):
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            if terminated or truncated:
                break
        else:
            raise RuntimeError("evaluation episode did not end within 1e6 steps: no time limit?")
        returns[i] = total
    return returns


def non_finite_keys(values: dict[str, float]) -> list[str]:
    """Keys of ``values`` whose value is NaN or infinite."""
    return [k for k, v in values.items() if not math.isfinite(float(v))]
