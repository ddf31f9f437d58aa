"""The interfaces every method codes against.

Methods depend only downward: they receive an :class:`~mbmpo.envs.EnvSpec`, a seed, a plain
config mapping, a :class:`Tracker` and a run folder.  ``suites`` supplies the W&B-backed tracker at
run time; tests use :class:`MemoryTracker`, a real (in-memory) implementation.

Metric schema (shared by every method, always logged against **real** env steps):

- ``env_steps``            real environment steps consumed so far (never imagined ones)
- ``eval/return_mean``     mean undiscounted return of the evaluation policy on a separate env
                           (MB-MPO: the pre-update policy, as plotted in the paper)
- ``eval/return_std``      std of those returns
- ``eval/episodes``        number of evaluation episodes behind the two values above
- ``time/wall_s``          seconds since the run started (accumulated across resumes)
- method-specific keys under their own prefix: ``mbmpo/...``, ``model/...``, ``train/...``,
  ``time/<phase>_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mbmpo.envs import EnvSpec

ENV_STEPS = "env_steps"
EVAL_RETURN_MEAN = "eval/return_mean"
EVAL_RETURN_STD = "eval/return_std"
EVAL_EPISODES = "eval/episodes"
WALL_S = "time/wall_s"


class NonFiniteError(RuntimeError):
    """Raised when a run produces NaN/inf; the message names the phase where it happened."""


@runtime_checkable
class Tracker(Protocol):
    """Where a method sends its metrics. ``step`` is always the number of real env steps."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record one row of metrics at ``step`` real env steps."""
        ...

    def summary(self, values: Mapping[str, Any]) -> None:
        """Record final values of the run (shown in the W&B run summary)."""
        ...


@dataclass(frozen=True)
class Budget:
    """How long a method trains and how often it is evaluated, all in real env steps."""

    total_env_steps: int
    """Stop once this many real env steps have been used (methods may overshoot by < one batch)."""
    eval_every: int
    """Evaluate on a separate env whenever this many more real env steps have been used."""
    eval_episodes: int = 5
    """Episodes per evaluation."""

    def __post_init__(self) -> None:
        for name in ("total_env_steps", "eval_every", "eval_episodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Budget.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class RunSummary:
    """What ``Method.train`` returns."""

    env_steps: int
    """Real env steps used."""
    final_return: float
    """Last ``eval/return_mean``."""
    wall_s: float
    """Wall-clock seconds of training, summed over resumes."""
    extra: Mapping[str, float] = field(default_factory=dict)
    """Method-specific final values."""


class Method(Protocol):
    """A training method behind the suite. Constructed once per run, then ``train`` is called.

    ``run_dir`` is the run's own folder: the method writes its checkpoints there and, when a
    checkpoint is already present, **resumes** from it (a killed run restarted with the same command
    continues). ``config`` holds method-specific settings (already merged from the method's default
    file and the manifest's overrides); unknown keys must raise ``ValueError`` naming the key and the
    allowed ones.
    """

    def __init__(
        self,
        env: EnvSpec,
        seed: int,
        config: Mapping[str, Any],
        tracker: Tracker,
        run_dir: Path,
        device: str = "cpu",
    ) -> None: ...

    def train(self, budget: Budget) -> RunSummary: ...


class MemoryTracker:
    """A tracker that keeps every logged row in memory (for tests and quick scripts)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.final: dict[str, Any] = {}

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.rows.append((int(step), {k: float(v) for k, v in metrics.items()}))

    def summary(self, values: Mapping[str, Any]) -> None:
        self.final.update(values)

    def series(self, key: str) -> list[tuple[int, float]]:
        """All ``(step, value)`` pairs logged for ``key``, in order."""
        return [(s, m[key]) for s, m in self.rows if key in m and not math.isnan(m[key])]
