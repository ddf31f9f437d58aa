"""The Ray executor: each run of a suite is one Ray task, so a suite spreads over a Ray cluster.

``python -m suites.run MANIFEST --executor ray --address HOST:PORT`` (or ``--address auto`` for
the cluster this machine belongs to; without ``--address`` Ray starts a private local cluster).

Each run becomes a Ray task that asks for the run's resources (``num_cpus`` = the run's ``cpus``,
``num_gpus`` = its ``gpus``) and is retried up to ``max_retries`` times when its Ray worker or node
is lost. The task runs the same worker as the local executor (``python -m suites.runner
<run_dir>/run_spec.json``, through :func:`child_main`) in the run folder, with its output appended to
``run.log``; a failed run (exit code 1) is reported, not retried. A retried run resumes from its
checkpoint exactly as a re-run suite does, and continues the same W&B run.

**Shared-filesystem assumption.** The results root (``--results-dir``) must be the same path on the
driver and on every node (NFS, a cluster filesystem, or one machine): the driver decides what to
skip or resume from the run folders, the tasks write into them, and the live view reads their
``progress.json``. Every node must also have this checkout (or the installed package) and the same
Python environment at the same path, because the task and its worker import ``suites`` there.

Ctrl-C cancels the tasks: a running task stops its worker like the local executor does (SIGTERM,
W&B finished, no DONE), and the rerun resumes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from suites.executors import Progress
from suites.manifest import RunSpec
from suites.runner import (
    EXIT_DONE,
    EXIT_INTERRUPTED,
    FAILED,
    RUN_LOG,
    SPEC_FILE,
    RunOptions,
    RunResult,
    tail,
    write_spec,
)
from suites.tracking import write_json

_REPO_ROOT = Path(__file__).resolve().parents[2]
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
LAUNCH_KEY = "launch"
"""Key of ``run_spec.json`` where a task records which suite invocation launched it (and where)."""
DEFAULT_MAX_RETRIES = 3
"""Ray retries of a run whose worker process or node was lost."""


def _run_gpus(spec: RunSpec) -> float:
    """GPUs the run asks for (0 when the manifest format has no ``gpus`` resource)."""
    return float(getattr(spec, "gpus", 0) or 0)


def run_options_for(spec: RunSpec, options: RunOptions) -> RunOptions:
    """The options a run executes with: a run that asks for GPUs trains on ``cuda``."""
    if _run_gpus(spec) > 0 and options.device == "cpu":
        return replace(options, device="cuda")
    return options


def exit_result(run_id: str, run_dir: Path, code: int, started: float) -> RunResult:
    """The :class:`RunResult` of a worker that exited with ``code`` (same rules as the local
    executor); writes ``FAILED`` for a worker that died without writing one."""
    if code == EXIT_DONE:
        return RunResult(run_id, "done", run_dir)
    if code == EXIT_INTERRUPTED:
        return RunResult(run_id, "interrupted", run_dir, "worker was interrupted")
    log_tail = tail(run_dir / RUN_LOG, 15)
    failed = run_dir / FAILED
    if failed.is_file() and failed.stat().st_mtime >= started - 1:
        error = tail(failed, 1)
    else:  # the worker died without reporting (killed, segfault, out of memory)
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        error = f"worker {how} without a traceback"
        failed.write_text(f"{error}\nlast lines of run.log:\n{log_tail}\n")
    return RunResult(run_id, "failed", run_dir, f"{error}\n{log_tail}")


# ------------------------------------------------------------------------------------ on a node


def run_task(
    spec_data: Mapping[str, Any], options_data: Mapping[str, Any], token: str, grace_s: float
) -> dict[str, Any]:
    """The body of a run's Ray task (on whichever node Ray picked): write ``run_spec.json`` with
    the launch ``token``, run the worker in the run folder until it exits, and report how it ended.

    A ``KeyboardInterrupt`` (``ray.cancel``) stops the worker with SIGTERM, then SIGKILL after
    ``grace_s``. If this process dies (lost worker) the worker notices and kills itself, so Ray's
    retry never shares the run folder with an orphan.

    :returns: ``{"status", "message", "node", "pid"}`` (a :class:`RunResult` without the paths).
    """
    spec = RunSpec.from_dict(spec_data)
    options = run_options_for(spec, RunOptions.from_dict(dict(options_data)))
    run_dir = write_spec(spec, options)
    node = socket.gethostname()
    launch = {"token": token, "node": node, "pid": os.getpid(), "time": time.time()}
    spec_file = run_dir / SPEC_FILE
    write_json(
        spec_file, {"spec": spec.to_dict(), "options": options.to_dict(), LAUNCH_KEY: launch}
    )
    env = dict(os.environ)  # keeps CUDA_VISIBLE_DEVICES, which Ray sets for GPU tasks
    for var in _THREAD_VARS:
        env[var] = str(spec.cpus)
    env["PYTHONUNBUFFERED"] = "1"
    python_path = [str(_REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    started = time.time()
    with (run_dir / RUN_LOG).open("ab") as log:
        log.write(f"=== ray task on node {node}, ray worker pid {os.getpid()}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(spec_file), str(os.getpid())],
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            # poll, not proc.wait(): ray.cancel() raises KeyboardInterrupt only between Python
            # bytecodes, never inside a blocking waitpid
            while (code := proc.poll()) is None:
                time.sleep(0.2)
        except KeyboardInterrupt:  # ray.cancel(): stop the worker cleanly, the rerun resumes
            code = _stop(proc, grace_s)
    result = exit_result(spec.run_id, run_dir, code, started)
    return {"status": result.status, "message": result.message, "node": node, "pid": os.getpid()}


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> int:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return EXIT_INTERRUPTED


def _watch_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """Kill this process as soon as ``parent_pid`` (the Ray worker) is gone: Ray retries a lost
    task elsewhere, and two workers must never write one run folder."""
    while True:
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(every_s)


def child_main(argv: Sequence[str]) -> int:
    """The worker a task starts: ``python -m suites.executors.ray_executor SPEC_FILE PARENT_PID``,
    i.e. :func:`suites.runner.main` plus a watch on the parent Ray worker."""
    spec_file, parent_pid = argv
    threading.Thread(target=_watch_parent, args=(int(parent_pid),), daemon=True).start()
    from suites.runner import main as runner_main

    return runner_main([spec_file])


# ------------------------------------------------------------------------------------ on the driver


@dataclass
class _Task:
    spec: RunSpec
    ref: Any
    run_dir: Path
    submitted: float
    started: bool = False


class RayExecutor:
    """Runs each spec as a Ray task (see the module docstring)."""

    def __init__(
        self,
        jobs: int | None = None,
        address: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        poll_s: float = 0.5,
        grace_s: float = 30.0,
    ) -> None:
        """
        :param jobs: most runs in flight at once; ``None`` submits them all and lets Ray queue
            them by their resources.
        :param address: Ray cluster ``HOST:PORT``, ``"auto"``, or ``None`` for ``$RAY_ADDRESS``,
            else a private local cluster.
        :param max_retries: retries of a run whose Ray worker or node died.
        :param poll_s: how often task states are polled.
        :param grace_s: on Ctrl-C, how long a run gets to finish W&B before it is killed.
        """
        if jobs is not None and jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {jobs}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.jobs = jobs
        self.address = address
        self.max_retries = max_retries
        self.poll_s = poll_s
        self.grace_s = grace_s

    def run(
        self, specs: Sequence[RunSpec], options: RunOptions, progress: Progress
    ) -> dict[str, RunResult]:
        """Run ``specs`` on the Ray cluster; one failure does not stop the others.

        On Ctrl-C running runs are stopped (returned ``interrupted``) and queued ones cancelled.
        """
        import ray

        own = not ray.is_initialized()
        if own:
            check_reachable(self.address)
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        try:
            return self._run(ray, specs, options, progress)
        finally:
            if own:
                ray.shutdown()

    def _run(
        self, ray: Any, specs: Sequence[RunSpec], options: RunOptions, progress: Progress
    ) -> dict[str, RunResult]:
        results: dict[str, RunResult] = {}
        token = uuid.uuid4().hex
        remote = ray.remote(run_task)
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        pending: list[RunSpec] = []
        for spec in specs:
            problem = _infeasible(spec, nodes)
            if problem:
                results[spec.run_id] = self._fail(spec, options, problem)
                progress.finished(spec, results[spec.run_id])
            else:
                pending.append(spec)
        tasks: dict[str, _Task] = {}
        try:
            while pending or tasks:
                while pending and (self.jobs is None or len(tasks) < self.jobs):
                    spec = pending.pop(0)
                    ref = remote.options(
                        num_cpus=spec.cpus,
                        num_gpus=_run_gpus(spec),
                        max_retries=self.max_retries,
                        retry_exceptions=False,
                        name=f"suite-run:{spec.run_id}",
                    ).remote(spec.to_dict(), options.to_dict(), token, self.grace_s)
                    tasks[spec.run_id] = _Task(spec, ref, options.run_dir(spec), time.time())
                self._mark_started(tasks, token, progress)
                refs = [t.ref for t in tasks.values()]
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.poll_s)
                done = set(ready)
                for run_id, task in list(tasks.items()):
                    if task.ref not in done:
                        continue
                    del tasks[run_id]
                    if not task.started:
                        task.started = True
                        progress.started(task.spec)
                    results[run_id] = self._collect(ray, task, options)
                    progress.finished(task.spec, results[run_id])
                progress.tick()
        except KeyboardInterrupt:
            results.update(self._cancel(ray, tasks, token, progress))
            for spec in pending:
                results[spec.run_id] = RunResult(
                    spec.run_id, "cancelled", options.run_dir(spec), "not started (Ctrl-C)"
                )
        return results

    def _mark_started(self, tasks: Mapping[str, _Task], token: str, progress: Progress) -> None:
        """A task has started once its run_spec.json carries this invocation's token."""
        for task in tasks.values():
            if not task.started and _launched_by(task.run_dir, token):
                task.started = True
                progress.started(task.spec)

    def _collect(self, ray: Any, task: _Task, options: RunOptions) -> RunResult:
        try:
            out = ray.get(task.ref)
        except Exception as exc:  # worker/node lost more than max_retries times, OOM, ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why = f"Ray task failed after {self.max_retries} retries: {type(exc).__name__}: {first}"
            return self._fail(task.spec, options, why)
        return RunResult(task.spec.run_id, out["status"], task.run_dir, out["message"])

    def _fail(self, spec: RunSpec, options: RunOptions, why: str) -> RunResult:
        run_dir = options.run_dir(spec)
        run_dir.mkdir(parents=True, exist_ok=True)
        log_tail = tail(run_dir / RUN_LOG, 15)
        (run_dir / FAILED).write_text(f"{why}\nlast lines of run.log:\n{log_tail}\n")
        return RunResult(spec.run_id, "failed", run_dir, f"{why}\n{log_tail}")

    def _cancel(
        self, ray: Any, tasks: Mapping[str, _Task], token: str, progress: Progress
    ) -> dict[str, RunResult]:
        """Cancel every task; running ones stop their workers and report ``interrupted``."""
        for task in tasks.values():
            with contextlib.suppress(Exception):
                ray.cancel(task.ref, force=False)
        refs = [t.ref for t in tasks.values()]
        ready: list[Any] = []
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: do not wait any longer
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.grace_s + 5)
        results = {}
        for run_id, task in tasks.items():
            started = task.started or _launched_by(task.run_dir, token)
            outcome = None
            if task.ref in ready:
                with contextlib.suppress(Exception):  # cancelled before it ran: no outcome
                    outcome = ray.get(task.ref, timeout=1)
            if outcome is not None:  # it ended by itself (finished, failed) or was stopped
                results[run_id] = RunResult(
                    run_id, outcome["status"], task.run_dir, outcome["message"]
                )
            elif started:
                with contextlib.suppress(Exception):
                    ray.cancel(task.ref, force=True)
                results[run_id] = RunResult(
                    run_id, "interrupted", task.run_dir, "stopped by Ctrl-C; rerun to resume"
                )
            else:
                results[run_id] = RunResult(
                    run_id, "cancelled", task.run_dir, "not started (Ctrl-C)"
                )
            if started:
                progress.finished(task.spec, results[run_id])
        return results


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast when ``address`` is ``HOST:PORT`` and nothing listens there (``ray.init`` would
    retry for minutes). ``None``, ``auto`` and ``ray://`` addresses are left to Ray.

    :raises ConnectionError: naming the address and how to start a head node.
    """
    if not address or address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConnectionError(f"--address {address!r}: expected HOST:PORT, 'auto' or ray://...")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        raise ConnectionError(
            f"no Ray cluster at {address} ({exc}); start a head node there with "
            f"`ray start --head --port {port}`, or pass --address auto on a cluster node"
        ) from None


def _launched_by(run_dir: Path, token: str) -> bool:
    import json

    try:
        data = json.loads((run_dir / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get(LAUNCH_KEY) or {}).get("token") == token


def _infeasible(spec: RunSpec, nodes: Sequence[Mapping[str, float]]) -> str:
    """Why no node of the cluster can ever run ``spec`` ('' if one can). Ray would queue such a
    task forever; an autoscaling cluster that would add bigger nodes is not supported."""
    needs = {"CPU": float(spec.cpus), "GPU": _run_gpus(spec)}
    if any(all(node.get(k, 0.0) >= v for k, v in needs.items() if v > 0) for node in nodes):
        return ""
    best = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in needs}
    wanted = " and ".join(f"{v:g} {k}" for k, v in needs.items() if v > 0)
    have = ", ".join(f"{best[k]:g} {k}" for k, v in needs.items() if v > 0)
    return f"run needs {wanted} on one node; the largest node of the cluster has {have}"


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
