"""The default executor: runs on this machine, one worker process per run, ``jobs`` at a time.

Each worker is ``python -m suites.runner <run_dir>/run_spec.json`` with its working directory in
the run folder (so stray files such as MuJoCo's MUJOCO_LOG.TXT land there), its stdout/stderr
appended to ``run.log`` and its BLAS/OpenMP threads capped at the run's ``cpus``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from suites.executors import Progress
from suites.manifest import RunSpec
from suites.runner import (
    EXIT_DONE,
    EXIT_INTERRUPTED,
    FAILED,
    RUN_LOG,
    RunOptions,
    RunResult,
    tail,
    worker_command,
    write_spec,
)

_REPO_ROOT = Path(__file__).resolve().parents[2]
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_jobs(specs: Sequence[RunSpec]) -> int:
    """Parallel runs that fit the machine: CPUs // the largest per-run ``cpus`` (at least 1)."""
    per_run = max((s.cpus for s in specs), default=1)
    return max(1, available_cpus() // per_run)


@dataclass
class _Worker:
    spec: RunSpec
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    run_dir: Path
    started: float


class LocalExecutor:
    """Runs specs in parallel worker processes on this machine (see the module docstring)."""

    def __init__(self, jobs: int | None = None, poll_s: float = 0.25, grace_s: float = 30.0):
        """
        :param jobs: parallel runs; ``None`` = :func:`default_jobs` of the specs.
        :param poll_s: how often workers are polled.
        :param grace_s: on Ctrl-C, how long workers get to finish W&B before they are killed.
        """
        if jobs is not None and jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.poll_s = poll_s
        self.grace_s = grace_s

    def run(
        self, specs: Sequence[RunSpec], options: RunOptions, progress: Progress
    ) -> dict[str, RunResult]:
        """Run ``specs`` (in order, ``jobs`` at a time); one failure does not stop the others.

        On Ctrl-C the workers are stopped (SIGTERM, then SIGKILL after ``grace_s``), running runs
        are returned as ``interrupted`` and not-yet-started ones as ``cancelled``.
        """
        jobs = self.jobs or default_jobs(specs)
        pending = list(specs)
        running: dict[str, _Worker] = {}
        results: dict[str, RunResult] = {}
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    spec = pending.pop(0)
                    running[spec.run_id] = self._start(spec, options)
                    progress.started(spec)
                for run_id, worker in list(running.items()):
                    code = worker.proc.poll()
                    if code is None:
                        continue
                    worker.log.close()
                    del running[run_id]
                    results[run_id] = self._result(worker, code)
                    progress.finished(worker.spec, results[run_id])
                progress.tick()
                if running:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            self._stop(list(running.values()))
            for run_id, worker in running.items():
                results[run_id] = RunResult(
                    run_id, "interrupted", worker.run_dir, "stopped by Ctrl-C; rerun to resume"
                )
                progress.finished(worker.spec, results[run_id])
            for spec in pending:
                results[spec.run_id] = RunResult(
                    spec.run_id, "cancelled", options.run_dir(spec), "not started (Ctrl-C)"
                )
        return results

    def _start(self, spec: RunSpec, options: RunOptions) -> _Worker:
        run_dir = write_spec(spec, options)
        env = dict(os.environ)
        for var in _THREAD_VARS:
            env[var] = str(spec.cpus)
        env["PYTHONUNBUFFERED"] = "1"
        # the worker runs inside the run folder: keep this checkout importable from there
        python_path = [str(_REPO_ROOT)] + [
            p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p
        ]
        env["PYTHONPATH"] = os.pathsep.join(python_path)
        log = (run_dir / RUN_LOG).open("ab")
        try:
            proc = subprocess.Popen(
                worker_command(run_dir),
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        except BaseException:
            log.close()
            raise
        return _Worker(spec, proc, log, run_dir, time.time())

    def _result(self, worker: _Worker, code: int) -> RunResult:
        run_id, run_dir = worker.spec.run_id, worker.run_dir
        if code == EXIT_DONE:
            return RunResult(run_id, "done", run_dir)
        if code == EXIT_INTERRUPTED:
            return RunResult(run_id, "interrupted", run_dir, "worker was interrupted")
        log_tail = tail(run_dir / RUN_LOG, 15)
        failed = run_dir / FAILED
        if failed.is_file() and failed.stat().st_mtime >= worker.started - 1:
            error = tail(failed, 1)
        else:  # the worker died without reporting (killed, segfault, out of memory)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            error = f"worker {how} without a traceback"
            failed.write_text(f"{error}\nlast lines of run.log:\n{log_tail}\n")
        return RunResult(run_id, "failed", run_dir, f"{error}\n{log_tail}")

    def _stop(self, workers: list[_Worker]) -> None:
        alive = [w for w in workers if w.proc.poll() is None]
        for w in alive:
            _signal(w.proc, signal.SIGTERM)
        deadline = time.time() + self.grace_s
        try:
            while any(w.proc.poll() is None for w in alive) and time.time() < deadline:
                time.sleep(0.1)
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait any longer
            pass
        for w in alive:
            if w.proc.poll() is None:
                _signal(w.proc, signal.SIGKILL)
            w.proc.wait()
            w.log.close()


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
