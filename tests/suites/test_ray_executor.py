"""The Ray executor against a REAL local Ray cluster (a head node started with ``ray start`` on
loopback, the suite connecting to it with ``--executor ray --address``), not a mock.

One cluster test covers: two real PPO runs on pendulum as Ray tasks, one of whose Ray worker is
SIGKILLed mid-run (Ray retries the task, which resumes from its checkpoint and continues the same
W&B run with no duplicated or missing evaluation points), and a run that asks for more CPUs than
any node has (reported as failed at once, the others unaffected).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.load import collect
from suites.executors import make_executor
from suites.executors.ray_executor import RayExecutor, _infeasible
from suites.journal import segment_files
from suites.manifest import load_manifest

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
EVAL_EVERY = 200
TOTAL = 1400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="disabled", WANDB_MODE="offline", WANDB_SILENT="true")
    return env


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[str]:
    """A local Ray head node on 127.0.0.1 with 2 CPUs; ``ray stop --force`` always afterwards."""
    port = _free_port()
    try:
        started = subprocess.run(
            [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
            + ["--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"],
            env=_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert started.returncode == 0, f"ray start failed:\n{started.stdout}\n{started.stderr}"
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(
            [str(RAY), "stop", "--force"], env=_env(), capture_output=True, timeout=60, check=False
        )


def _rows(run_dir: Path, since: float) -> int:
    """Rows the run's attempt started after ``since`` has logged (0 before it starts)."""
    try:
        progress = json.loads((run_dir / "progress.json").read_text())
        return int(progress["rows"]) if float(progress["started"]) >= since else 0
    except (OSError, ValueError, KeyError):
        return 0


def _ray_worker_pid(run_dir: Path) -> int | None:
    try:
        found = re.findall(r"ray worker pid (\d+)", (run_dir / "run.log").read_text())
    except OSError:
        return None
    return int(found[-1]) if found else None


def _wait_for(
    run_dir: Path, rows: int, suite: subprocess.Popen[str], since: float, deadline: float
) -> int:
    """The Ray worker pid of ``run_dir``'s task once its attempt started after ``since`` has
    logged ``rows`` rows."""
    while time.time() < deadline:
        assert suite.poll() is None, "the suite ended too early:\n" + (suite.stdout or "").read()
        if _rows(run_dir, since) >= rows:
            pid = _ray_worker_pid(run_dir)
            assert pid is not None
            return pid
        time.sleep(0.1)
    raise AssertionError(f"{run_dir} logged fewer than {rows} rows in time")


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(suite: subprocess.Popen[str], deadline: float) -> str:
    try:
        out, _ = suite.communicate(timeout=max(1.0, deadline - time.time()))
    finally:
        if suite.poll() is None:
            suite.kill()
            suite.wait()
    return out


def test_tiny_suite_completes_on_a_local_ray_cluster(
    ray_cluster: str, tmp_path: Path, write_manifest
) -> None:
    """The issue's CI check: a tiny real suite runs to completion as Ray tasks on a real cluster."""
    manifest = write_manifest(
        {
            "name": "raytiny",
            "methods": ["ppo"],
            "envs": ["pendulum"],
            "seeds": 2,
            "budget": {"total_env_steps": 400, "eval_every": 200, "eval_episodes": 2},
            "method_overrides": {
                "ppo": {"config": {"n_steps": 100, "batch_size": 50, "normalize_obs": False}}
            },
        }
    )
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "suites.run", str(manifest), "--executor", "ray"]
    cmd += ["--address", ray_cluster, "--results-dir", str(results), "--no-figure"]
    suite = _start(cmd, tmp_path)
    out = _finish(suite, time.time() + 240)
    assert suite.returncode == 0, out
    assert "2 done" in out, out
    runs = {info.run_id: (info, history) for info, history in collect(results, cache_dir=None)}
    assert set(runs) == {"pendulum__ppo__s0", "pendulum__ppo__s1"}
    for run_id, (info, history) in runs.items():
        assert (results / "raytiny" / run_id / "DONE").is_file()
        assert "=== ray task on node" in (results / "raytiny" / run_id / "run.log").read_text()
        steps = [int(row["env_steps"]) for row in history if "eval/return_mean" in row]
        assert steps == [0, 200, 400], (run_id, steps)
        assert info.finished


@pytest.mark.slow
def test_suite_on_a_local_ray_cluster_stops_resumes_and_retries_a_lost_worker(
    ray_cluster: str, tmp_path: Path, write_manifest
) -> None:
    manifest = write_manifest(
        {
            "name": "raytest",
            "methods": ["ppo"],
            "envs": ["pendulum", "point"],
            "seeds": 2,
            "budget": {"total_env_steps": TOTAL, "eval_every": EVAL_EVERY, "eval_episodes": 2},
            "method_overrides": {
                "ppo": {"config": {"n_steps": 100, "batch_size": 50, "normalize_obs": False}}
            },
            # point is only here to ask for more CPUs than any node has
            "run_overrides": {"point/ppo": {"resources": {"cpus": 3}}},
        }
    )
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "suites.run", str(manifest), "--executor", "ray"]
    cmd += ["--address", ray_cluster, "--results-dir", str(results), "--no-figure"]
    victim = results / "raytest" / "pendulum__ppo__s0"
    deadline = time.time() + 200

    # 1. Ctrl-C while both runs train: the tasks stop their workers, nothing is DONE
    suite = _start(cmd, tmp_path)
    _wait_for(victim, 2, suite, time.time(), deadline)
    suite.send_signal(signal.SIGINT)
    out = _finish(suite, deadline)
    assert suite.returncode == 130, out
    assert "interrupted pendulum__ppo__s0" in out and "interrupted pendulum__ppo__s1" in out, out
    assert not list(results.glob("raytest/*/DONE"))

    # 2. the same command resumes both; the Ray worker of one is killed and Ray retries its task
    suite = _start(cmd, tmp_path)
    killed = _wait_for(victim, 2, suite, time.time(), deadline)
    os.kill(killed, signal.SIGKILL)
    out = _finish(suite, deadline)
    assert suite.returncode == 1, out  # the infeasible runs failed, the others finished
    assert "2 done" in out and "2 failed" in out, out

    for seed in (0, 1):
        assert (results / "raytest" / f"pendulum__ppo__s{seed}" / "DONE").is_file(), out
        failed = results / "raytest" / f"point__ppo__s{seed}" / "FAILED"
        assert "3 CPU" in failed.read_text(), failed.read_text()
    log = (victim / "run.log").read_text()
    assert log.count("=== ray task on node") == 3, log  # run, resume, and Ray's retry
    assert _ray_worker_pid(victim) != killed

    expected = list(range(0, TOTAL + 1, EVAL_EVERY))
    runs = {info.run_id: (info, history) for info, history in collect(results, cache_dir=None)}
    assert set(runs) == {"pendulum__ppo__s0", "pendulum__ppo__s1"}
    for run_id, (info, history) in runs.items():
        steps = [int(row["env_steps"]) for row in history if "eval/return_mean" in row]
        assert steps == expected, (run_id, steps)  # nothing duplicated, nothing missing
        assert info.finished
        assert all(Path(s).is_file() and s.endswith(".wandb") for s in info.sources)
        spec_id = info.wandb_id
        assert len(segment_files(results / "raytest" / run_id / "wandb", spec_id)) >= 2


def test_infeasible_resources_are_named() -> None:
    spec = load_manifest("smoke").expand()[0]
    nodes = [{"CPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}]
    assert _infeasible(spec, nodes) == ""
    from dataclasses import replace

    big = replace(spec, cpus=4)
    message = _infeasible(big, nodes)
    assert "4 CPU" in message and "largest node" in message and "2 CPU" in message


def test_make_executor_builds_the_ray_executor_with_its_options() -> None:
    executor = make_executor("ray", jobs=3, address="127.0.0.1:1", max_retries=5)
    assert isinstance(executor, RayExecutor)
    assert (executor.jobs, executor.address, executor.max_retries) == (3, "127.0.0.1:1", 5)
    with pytest.raises(ValueError, match="max_retries"):
        RayExecutor(max_retries=-1)


def test_address_without_ray_executor_is_a_usage_error(tmp_path: Path) -> None:
    from suites.run import EXIT_USAGE, main

    code = main(["smoke", "--address", "127.0.0.1:1", "--results-dir", str(tmp_path)])
    assert code == EXIT_USAGE
    assert not any(tmp_path.iterdir())


def test_gpu_runs_ask_ray_for_gpus_and_train_on_cuda(tmp_path: Path) -> None:
    from dataclasses import replace

    from suites.executors.ray_executor import run_options_for
    from suites.runner import RunOptions

    spec = load_manifest("smoke").expand()[0]
    options = RunOptions(results_root=tmp_path)
    assert run_options_for(spec, options).device == "cpu"
    gpu = replace(spec, gpus=0.5)
    assert run_options_for(gpu, options).device == "cuda"
    assert _infeasible(gpu, [{"CPU": 8.0}]).startswith("run needs 1 CPU and 0.5 GPU")
    assert _infeasible(gpu, [{"CPU": 8.0}, {"CPU": 1.0, "GPU": 1.0}]) == ""


def test_unreachable_cluster_fails_fast_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from suites.run import EXIT_USAGE, main

    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    results = tmp_path / "results"
    code = main(["smoke", "--executor", "ray", "--address", address, "--results-dir", str(results)])
    assert code == EXIT_USAGE
    assert f"no Ray cluster at {address}" in capsys.readouterr().err
    assert not results.exists()
