"""The method registry (lazy imports, defaults files) and the live progress view."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mbmpo.protocols import Budget
from suites import registry
from suites.manifest import RunSpec
from suites.progress import TerminalProgress
from suites.runner import RunOptions, RunResult


def test_methods_and_unknown_name() -> None:
    assert registry.list_methods() == ["ddpg", "mb-mpc", "mbmpo", "me-trpo", "ppo", "trpo"]
    assert registry.method_target("me-trpo") == "baselines.metrpo:METRPO"
    with pytest.raises(KeyError, match="unknown method 'sac'; valid methods: ddpg, mb-mpc"):
        registry.method_target("sac")
    with pytest.raises(ValueError, match="module:ClassName"):
        registry.register_method("x", "no_colon")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_method("ppo", "elsewhere:PPO")


def test_running_mbmpo_never_imports_sb3() -> None:
    code = (
        "import sys\n"
        "import suites.run, suites.manifest, suites.runner, suites.executors.local\n"
        "from suites.manifest import load_manifest\n"
        "from suites.registry import load_method\n"
        "assert load_method('mbmpo').__name__ == 'MBMPO'\n"
        "print(sorted(m for m in ('stable_baselines3', 'sb3_contrib', 'wandb') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_config_files(tmp_path: Path) -> None:
    assert registry.default_config("mbmpo", tmp_path) == {}  # missing file: empty defaults
    (tmp_path / "ppo.yaml").write_text("# comment\nn_steps: 64\npolicy_hidden: [32, 32]\n")
    assert registry.default_config("ppo", tmp_path) == {"n_steps": 64, "policy_hidden": [32, 32]}
    (tmp_path / "trpo.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"trpo\.yaml: must be a flat mapping"):
        registry.default_config("trpo", tmp_path)
    (tmp_path / "ddpg.yaml").write_text("a: [1\n")
    with pytest.raises(ValueError, match=r"ddpg\.yaml: not valid YAML"):
        registry.default_config("ddpg", tmp_path)
    with pytest.raises(KeyError, match="valid methods"):
        registry.default_config("sac", tmp_path)
    # the real files parse
    for name in ("trpo", "ppo", "ddpg"):
        assert isinstance(registry.default_config(name), dict)


def spec(seed: int) -> RunSpec:
    return RunSpec(
        suite="s",
        run_id=f"pendulum__ppo__s{seed}",
        env="pendulum",
        method="ppo",
        target="baselines.sb3:PPOMethod",
        seed=seed,
        budget=Budget(1000, 100, 1),
        scale=1.0,
        method_config={},
        cpus=1,
        manifest="m.yaml",
    )


def test_progress_view_reads_progress_json(tmp_path: Path) -> None:
    options = RunOptions(results_root=tmp_path)
    specs = [spec(0), spec(1), spec(2)]
    stream = io.StringIO()
    view = TerminalProgress("s", specs, options, stream=stream, live=True, redraw_every_s=0.0)
    for s in specs[:2]:
        view.started(s)
    run_dir = options.run_dir(specs[0])
    run_dir.mkdir(parents=True)
    (run_dir / "progress.json").write_text(json.dumps({"env_steps": 250, "eval/return_mean": -7.5}))
    view.tick()
    frame = stream.getvalue().split("\x1b[")[-1]
    assert "s: 0/3 done, 2 running, 0 failed, 1 pending" in frame
    assert "pendulum__ppo__s0" in frame and "250/1000 steps ( 25.0%)" in frame and "-7.5" in frame
    view.finished(specs[1], RunResult(specs[1].run_id, "failed", tmp_path, "RuntimeError: boom"))
    view.close()
    text = stream.getvalue()
    assert "[FAILED] pendulum__ppo__s1" in text and "RuntimeError: boom" in text
    assert "1 failed" in view.status_line() and "1 running" in view.status_line()


def test_plain_progress_prints_events(tmp_path: Path) -> None:
    options = RunOptions(results_root=tmp_path)
    stream = io.StringIO()
    view = TerminalProgress("s", [spec(0)], options, stream=stream, live=False, plain_every_s=0.0)
    view.started(spec(0))
    view.tick()
    view.finished(spec(0), RunResult(spec(0).run_id, "done", tmp_path))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[start] pendulum__ppo__s0"
    assert lines[1].startswith("s: 0/1 done, 1 running")
    assert lines[2].startswith("[done] pendulum__ppo__s0")
    assert "\x1b[" not in stream.getvalue()
