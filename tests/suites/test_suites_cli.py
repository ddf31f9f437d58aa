"""``python -m suites.run``: dry runs, real end-to-end suites (worker processes, real MuJoCo/SB3
and offline W&B), failure isolation, skipping finished runs, and Ctrl-C with resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from suites_testkit import CHECKPOINT, TARGET

from suites import registry
from suites.run import main as run_main


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def random_suite(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "rs",
        "methods": ["random"],
        "envs": ["pendulum"],
        "seeds": 2,
        "budget": {"total_env_steps": 300, "eval_every": 150, "eval_episodes": 1},
    }
    data.update(changes)
    return data


def test_dry_run_lists_grid_and_actions_and_writes_nothing(
    random_method, write_manifest, tmp_path: Path, capsys
) -> None:
    path = write_manifest(random_suite(seeds=4))
    results = tmp_path / "results"
    suite_dir = results / "rs"
    for seed, files in {1: ["DONE"], 2: ["run.log", CHECKPOINT], 3: ["run.log", "FAILED"]}.items():
        run_dir = suite_dir / f"pendulum__random__s{seed}"
        run_dir.mkdir(parents=True)
        for name in files:
            (run_dir / name).write_text("{}")
    before = tree(results)
    assert run_main([str(path), "--dry-run", "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert tree(results) == before
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("pendulum__")}
    assert list(lines) == [f"pendulum__random__s{i}" for i in range(4)]
    assert lines["pendulum__random__s0"].split()[1:7] == [
        "pendulum",
        "random",
        "0",
        "300",
        "150",
        "1",
    ]
    assert lines["pendulum__random__s0"].endswith(" run")
    assert lines["pendulum__random__s1"].endswith("skip (finished)")
    assert lines["pendulum__random__s2"].endswith("resume (checkpoint present)")
    assert lines["pendulum__random__s3"].endswith("run (failed before)")
    assert "would run 2, resume 1, skip 1" in out and "W&B offline" in out


def test_dry_run_scaled_and_only(random_method, write_manifest, tmp_path: Path, capsys) -> None:
    path = write_manifest(random_suite())
    results = tmp_path / "results"
    args = [str(path), "--dry-run", "--results-dir", str(results), "--scale", "0.5"]
    assert run_main([*args, "--only", "s1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("pendulum__")]
    assert rows == [
        ["pendulum__random__s1__x0.5", "pendulum", "random", "1", "150", "75", "1", "1", "run"]
    ]
    assert "budgets scaled x0.5" in out
    assert run_main([*args, "--only", "nomatch"]) == 2
    assert "matches none" in capsys.readouterr().err
    assert not results.exists()


def test_bad_flags_exit_with_usage(write_manifest, tmp_path: Path) -> None:
    path = write_manifest(random_suite(methods=["ppo"]))
    for flags in (["--scale", "0"], ["--jobs", "0"], ["--wandb-mode", "cloud"]):
        with pytest.raises(SystemExit) as info:
            run_main([str(path), "--dry-run", *flags])
        assert info.value.code == 2


def test_help_lists_manifests_methods_envs(capsys) -> None:
    with pytest.raises(SystemExit):
        run_main(["--help"])
    out = capsys.readouterr().out
    for word in ("--dry-run", "--scale", "--only", "smoke", "mbmpo", "pendulum", "exit code"):
        assert word in out


def test_failing_run_is_reported_and_does_not_stop_the_other(
    random_method, write_manifest, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(registry._METHODS, "random-fail", TARGET)
    path = write_manifest(
        random_suite(
            methods=["random", "random-fail"],
            seeds=[0],
            method_overrides={"random-fail": {"config": {"fail": True}}},
        )
    )
    results = tmp_path / "results"
    # online requested, with a key but no server: the runs fall back to offline and go on
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    args = [str(path), "--results-dir", str(results), "--jobs", "2", "--no-figure"]
    assert run_main([*args, "--wandb-mode", "online"]) == 1
    out = capsys.readouterr().out
    good = results / "rs" / "pendulum__random__s0"
    bad = results / "rs" / "pendulum__random-fail__s0"
    assert (good / "DONE").is_file() and not (good / "FAILED").exists()
    import yaml

    wandb_info = yaml.safe_load((good / "config.yml").read_text())["wandb"]
    assert wandb_info["requested_mode"] == "online" and wandb_info["mode"] == "offline"
    assert "not reachable" in wandb_info["fallback"]
    assert "falling back to OFFLINE" in (good / "run.log").read_text()
    assert (bad / "FAILED").is_file() and not (bad / "DONE").exists()
    assert "configured failure" in (bad / "FAILED").read_text()
    assert "FAILED  pendulum__random-fail__s0" in out
    assert str(bad / "run.log") in out and "RuntimeError: RandomMethod: configured failure" in out
    # the failed run's W&B run was finished with a non-zero exit code
    from analysis.wandb_offline import find_run_files, read_run

    assert [read_run(f).exit_code for f in find_run_files(bad)] == [1]
    # run again: the finished run is skipped, the failed one is tried again
    assert run_main(args) == 1
    out = capsys.readouterr().out
    assert "skipping 1 finished runs" in out and "[start] pendulum__random-fail__s0" in out
    assert "[start] pendulum__random__s0" not in out
    assert len(find_run_files(good)) == 1 and len(find_run_files(bad)) == 2


def test_real_sb3_suite_end_to_end(write_manifest, tmp_path: Path, capsys) -> None:
    """One real PPO run of a few hundred steps in a worker, W&B offline, then the figure."""
    path = write_manifest(
        {
            "name": "tiny",
            "methods": ["ppo"],
            "envs": ["pendulum"],
            "seeds": [0],
            "budget": {"total_env_steps": 256, "eval_every": 128, "eval_episodes": 1},
            "method_overrides": {
                "ppo": {"config": {"n_steps": 64, "batch_size": 32, "n_epochs": 1}}
            },
        }
    )
    results = tmp_path / "results"
    args = [str(path), "--results-dir", str(results), "--wandb-mode", "offline"]
    assert run_main(args) == 0
    out_lines = capsys.readouterr().out.strip().splitlines()
    run_dir = results / "tiny" / "pendulum__ppo__s0"
    done = json.loads((run_dir / "DONE").read_text())
    assert done["env_steps"] >= 256 and done["wandb_mode"] == "offline"
    wandb_files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(wandb_files) == 1
    import yaml

    config = yaml.safe_load((run_dir / "config.yml").read_text())
    assert config["method_config"]["n_steps"] == 64 and config["method_config"]["gamma"] == 0.99
    assert config["budget"] == {"total_env_steps": 256, "eval_every": 128, "eval_episodes": 1}
    assert config["scale"] == 1.0 and config["suite"] == "tiny" and config["git_commit"]
    assert config["versions"]["stable-baselines3"] == "2.9.2"
    assert (
        "suites.run" in config["command"]
        and "suites.runner" in (run_dir / "command.txt").read_text()
    )
    figure = Path(out_lines[-1])
    assert figure.suffix == ".png" and figure.is_file() and figure.is_relative_to(results)
    # the same command again: nothing to do, the W&B run is not duplicated
    assert run_main([*args, "--no-figure"]) == 0
    assert "skipping 1 finished runs" in capsys.readouterr().out
    assert len(list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))) == 1


def test_ctrl_c_stops_cleanly_and_rerun_resumes(
    random_method, write_manifest, tmp_path: Path
) -> None:
    """SIGINT to the suite process: the worker stops without DONE; the rerun resumes the method
    from its checkpoint and continues the same W&B run id."""
    slow = random_suite(
        seeds=[0],
        budget={"total_env_steps": 100_000, "eval_every": 200, "eval_episodes": 1},
        method_overrides={"random": {"config": {"step_sleep": 0.001}}},
    )
    path = write_manifest(slow)
    results = tmp_path / "results"
    run_dir = results / "rs" / "pendulum__random__s0"
    # the CLI in a fresh process, with the test method registered first
    code = (
        "import sys; from suites import registry; "
        f"registry.register_method('random', {TARGET!r}); "
        "from suites.run import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path), "--results-dir", str(results), "--no-figure"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            progress = run_dir / "progress.json"
            if progress.is_file() and json.loads(progress.read_text()).get("env_steps", 0) >= 200:
                break
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.2)
        else:
            pytest.fail("the run never logged")
        worker_pids = [int(p.name.split("-")[1]) for p in run_dir.glob("pid-*")]
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert not (run_dir / "DONE").exists() and not (run_dir / "FAILED").exists()
    for pid in worker_pids:  # the worker is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    checkpoint = json.loads((run_dir / CHECKPOINT).read_text())
    assert checkpoint["env_steps"] >= 200

    # rerun with a small budget left: resumes from the checkpoint, same W&B id, nothing duplicated
    slow["budget"]["total_env_steps"] = checkpoint["env_steps"] + 200
    slow["method_overrides"]["random"]["config"]["step_sleep"] = 0.0
    write_manifest(slow)
    assert run_main([str(path), "--results-dir", str(results), "--no-figure"]) == 0
    done = json.loads((run_dir / "DONE").read_text())
    assert done["extra"]["resumes"] == 1.0
    assert json.loads((run_dir / CHECKPOINT).read_text())["resumed_from"] == [
        checkpoint["env_steps"]
    ]
    from analysis.wandb_offline import find_run_files, read_run

    segments = [read_run(f) for f in find_run_files(run_dir)]
    assert len(segments) == 2 and len({s.run_id for s in segments}) == 1
    assert segments[0].run_id == done["wandb_id"]
    steps = [
        r["env_steps"] for s in sorted(segments, key=lambda s: s.start_time) for r in s.history
    ]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    assert steps[-1] == checkpoint["env_steps"] + 200


def test_results_root_from_environment(
    random_method, write_manifest, tmp_path: Path, monkeypatch, capsys
) -> None:
    path = write_manifest(random_suite())
    monkeypatch.setenv("MBMPO_RESULTS", str(tmp_path / "env-results"))
    assert run_main([str(path), "--dry-run"]) == 0
    assert f"results in {tmp_path / 'env-results' / 'rs'}" in capsys.readouterr().out
    # the flag wins over the variable
    assert run_main([str(path), "--dry-run", "--results-dir", str(tmp_path / "flag")]) == 0
    assert f"results in {tmp_path / 'flag' / 'rs'}" in capsys.readouterr().out
    assert not (tmp_path / "env-results").exists() and not (tmp_path / "flag").exists()
