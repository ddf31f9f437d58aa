"""Executors: how a suite's runs are scheduled (local worker processes by default; a Ray
executor for a cluster can be added beside it).

An executor takes the runs to do, the shared :class:`~suites.runner.RunOptions` and a
:class:`Progress` listener, runs each spec through :func:`suites.runner.execute` (in a worker
process, a Ray task, ...) and returns one :class:`~suites.runner.RunResult` per run id. It must:
keep going when one run fails; on Ctrl-C stop its workers (no DONE is written for a stopped run)
and return with the unfinished runs marked ``interrupted``/``cancelled``; capture each run's
output in ``<run_dir>/run.log``. Register new executors in :data:`EXECUTORS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from suites.manifest import RunSpec
from suites.runner import RunOptions, RunResult


class Progress(Protocol):
    """Listener an executor informs while it works (e.g. the live terminal view)."""

    def started(self, spec: RunSpec) -> None:
        """``spec``'s run has started."""
        ...

    def finished(self, spec: RunSpec, result: RunResult) -> None:
        """``spec``'s run has ended (any status)."""
        ...

    def tick(self) -> None:
        """Called about every second while runs are in flight (to refresh a view)."""
        ...


class NullProgress:
    """A :class:`Progress` that ignores everything."""

    def started(self, spec: RunSpec) -> None:
        pass

    def finished(self, spec: RunSpec, result: RunResult) -> None:
        pass

    def tick(self) -> None:
        pass


class Executor(Protocol):
    """Runs a batch of specs; see the module docstring for the obligations."""

    def run(
        self, specs: Sequence[RunSpec], options: RunOptions, progress: Progress
    ) -> dict[str, RunResult]:
        """Run ``specs``; returns ``run_id -> RunResult`` for every spec."""
        ...


EXECUTORS: dict[str, str] = {
    "local": "suites.executors.local:LocalExecutor",
    "ray": "suites.executors.ray_executor:RayExecutor",
}
"""Executor name -> ``"module:Class"``; the class is built as ``Class(jobs=..., **options)``."""


def make_executor(name: str, jobs: int | None = None, **options: Any) -> Executor:
    """Build the executor registered as ``name`` (imported lazily); ``options`` are passed to its
    constructor (e.g. the Ray executor's ``address``).

    :raises KeyError: listing the valid names.
    """
    try:
        target = EXECUTORS[name]
    except KeyError:
        raise KeyError(
            f"unknown executor {name!r}; valid: {', '.join(sorted(EXECUTORS))}"
        ) from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(jobs=jobs, **options)  # type: ignore[no-any-return]


__all__ = ["EXECUTORS", "Executor", "NullProgress", "Progress", "make_executor"]
