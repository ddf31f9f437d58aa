"""The W&B mode rule, the real offline tracker, and the online -> offline fallback."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from suites.tracking import (
    ModeDecision,
    WandbTracker,
    has_api_key,
    resolve_mode,
    server_reachable,
)

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """An environment with no W&B settings and a netrc that does not exist."""
    env = {"HOME": str(tmp_path), "NETRC": str(tmp_path / "no-netrc")}
    env.update(values)
    return env


def test_mode_rule(tmp_path: Path) -> None:
    assert resolve_mode(None, clean_env(tmp_path)) == ModeDecision(
        "offline", "no API key configured"
    )
    keyed = clean_env(tmp_path, WANDB_API_KEY=FAKE_KEY)
    assert resolve_mode(None, keyed).mode == "online"
    # WANDB_MODE beats the key; the explicit flag beats both
    assert resolve_mode(None, {**keyed, "WANDB_MODE": "offline"}).mode == "offline"
    assert resolve_mode("online", clean_env(tmp_path, WANDB_MODE="offline")).mode == "online"
    assert resolve_mode("disabled", keyed).mode == "disabled"
    assert resolve_mode("offline", keyed).reason == "--wandb-mode flag"
    # W&B's aliases
    assert resolve_mode(None, clean_env(tmp_path, WANDB_MODE="dryrun")).mode == "offline"
    assert resolve_mode(None, clean_env(tmp_path, WANDB_MODE="DISABLED")).mode == "disabled"
    # an empty WANDB_MODE / key counts as unset
    assert (
        resolve_mode(None, clean_env(tmp_path, WANDB_MODE="", WANDB_API_KEY=" ")).mode == "offline"
    )


def test_mode_rule_rejects_unknown_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WANDB_MODE.*'cloud'.*online, offline, disabled"):
        resolve_mode(None, clean_env(tmp_path, WANDB_MODE="cloud"))
    with pytest.raises(ValueError, match="--wandb-mode.*online, offline, disabled"):
        resolve_mode("sometimes", clean_env(tmp_path))


def test_netrc_entry_counts_as_key(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    netrc.chmod(0o600)
    env = clean_env(tmp_path, NETRC=str(netrc))
    assert has_api_key(env) and resolve_mode(None, env).mode == "online"
    # an entry for another host, or for the public host when a private server is configured
    assert not has_api_key({**env, "WANDB_BASE_URL": "http://wandb.example.org:8080"})
    netrc.write_text(f"machine other.host\n  login user\n  password {FAKE_KEY}\n")
    assert not has_api_key(env)


def make_tracker(run_dir: Path, mode: str, **kwargs) -> WandbTracker:
    return WandbTracker(
        run_dir,
        wandb_id="testid0123456789",
        project="mbmpo-suite-test",
        group="t",
        job_type="random",
        name="pendulum__random__0__now",
        tags=["pendulum", "random"],
        config={"suite": "t", "run_id": "pendulum__random__s0", "seed": 0},
        mode=ModeDecision(mode, "test"),
        progress_extra={"run_id": "pendulum__random__s0", "total_env_steps": 100},
        say=kwargs.pop("say", None),
        **kwargs,
    )


def log_rows(tracker: WandbTracker) -> None:
    import numpy as np

    row = {"eval/return_mean": np.float32(-5.0), "train/kl": 0.1}  # numpy scalars are accepted
    tracker.log(row, step=50)  # type: ignore[arg-type]
    tracker.log({"eval/return_mean": -3.0}, step=100)
    tracker.summary({"final/return": -3.0})


def test_offline_tracker_writes_wandb_file_and_progress(tmp_path: Path) -> None:
    from analysis.wandb_offline import find_run_files, read_run

    run_dir = tmp_path / "run"
    before = {k: os.environ.get(k) for k in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR")}
    tracker = make_tracker(run_dir, "offline")
    tracker.start()
    assert os.environ["WANDB_CONFIG_DIR"].startswith(str(run_dir))
    log_rows(tracker)
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["env_steps"] == 100 and progress["eval/return_mean"] == -3.0
    assert progress["run_id"] == "pendulum__random__s0" and progress["total_env_steps"] == 100
    tracker.finish(0)
    assert {k: os.environ.get(k) for k in before} == before  # restored
    files = find_run_files(run_dir)
    assert [f.name for f in files] == ["run-testid0123456789.wandb"]
    assert files[0].parent.name.startswith("offline-run-")
    run = read_run(files[0])
    assert run.group == "t" and run.job_type == "random" and set(run.tags) == {"pendulum", "random"}
    assert run.config["run_id"] == "pendulum__random__s0" and run.exit_code == 0
    rows = [(r["env_steps"], r.get("eval/return_mean")) for r in run.history]
    assert rows == [(50, -5.0), (100, -3.0)]
    assert run.summary["final/return"] == -3.0


def test_disabled_tracker_touches_no_wandb(tmp_path: Path) -> None:
    tracker = make_tracker(tmp_path / "run", "disabled")
    tracker.start()
    log_rows(tracker)
    tracker.finish(0)
    assert not (tmp_path / "run" / "wandb").exists()
    assert json.loads((tmp_path / "run" / "progress.json").read_text())["env_steps"] == 100


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_online_without_server_falls_back_to_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    said: list[str] = []
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    tracker = make_tracker(run_dir, "online", init_timeout_s=5.0, say=said.append)
    tracker.start()
    log_rows(tracker)
    tracker.finish(0)
    assert time.monotonic() - t0 < 60  # generous: it must not hang, not be fast
    assert tracker.mode == "offline" and "not reachable" in (tracker.fallback_reason or "")
    assert any("falling back to OFFLINE" in line for line in said)
    assert len(list(run_dir.glob("wandb/offline-run-*/run-testid0123456789.wandb"))) == 1


def test_failed_online_init_falls_back_to_offline(tmp_path: Path, monkeypatch) -> None:
    """The W&B init itself fails (probe skipped): after its init_timeout, the run goes offline."""
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tmp_path / "run"
    tracker = make_tracker(run_dir, "online", init_timeout_s=3.0, probe=False, say=lambda m: None)
    tracker.start()
    log_rows(tracker)
    tracker.finish(0)
    assert tracker.mode == "offline" and "online init failed" in (tracker.fallback_reason or "")
    assert not list(run_dir.glob("wandb/run-*"))  # the failed online attempt's folder is removed
    assert [p.name for p in run_dir.glob("wandb/offline-run-*/*.wandb")] == [
        "run-testid0123456789.wandb"
    ]


def test_server_probe(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert server_reachable(f"http://127.0.0.1:{s.getsockname()[1]}", 2.0)
    assert not server_reachable(f"http://127.0.0.1:{closed_port()}", 2.0)
    assert not server_reachable("not a url", 1.0)


@pytest.mark.slow
def test_silent_server_times_out_then_offline(tmp_path: Path, monkeypatch) -> None:
    """A server that accepts connections but never answers: the probe passes, W&B's init times out
    (init_timeout plus W&B's own request timeouts, ~5-20 s), then the run goes offline."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    run_dir = tmp_path / "run"
    tracker = make_tracker(run_dir, "online", init_timeout_s=3.0, say=lambda m: None)
    t0 = time.monotonic()
    try:
        tracker.start()
        log_rows(tracker)
        tracker.finish(0)
    finally:
        server.close()
        for conn in accepted:
            conn.close()
    assert time.monotonic() - t0 < 120
    assert tracker.mode == "offline" and "online init failed" in (tracker.fallback_reason or "")
    assert len(list(run_dir.glob("wandb/offline-run-*/run-testid0123456789.wandb"))) == 1


def test_run_naming_and_scaled_tag(tmp_path: Path, write_manifest) -> None:
    import re

    import yaml

    from suites.manifest import load_manifest
    from suites.runner import RunOptions, make_tracker, wandb_config

    path = write_manifest(
        yaml.safe_dump(
            {
                "name": "s",
                "methods": ["ppo"],
                "envs": ["pendulum"],
                "seeds": [3],
                "budget": {"total_env_steps": 1000, "eval_every": 100},
            }
        )
    )
    options = RunOptions(results_root=tmp_path, wandb_project="p", command="cmd")
    full, scaled = (load_manifest(path).expand(scale=s)[0] for s in (1.0, 0.1))
    for spec, tags in ((full, ["pendulum", "ppo"]), (scaled, ["pendulum", "ppo", "scaled"])):
        config = wandb_config(spec, options)
        tracker = make_tracker(spec, options, config)
        assert tracker.tags == tags and tracker.group == "s" and tracker.job_type == "ppo"
        assert tracker.project == "p" and tracker.wandb_id == spec.wandb_id
        assert re.fullmatch(r"pendulum__ppo__3__\d{8}-\d{6}", tracker.name)
        assert config["scale"] == spec.scale and config["run_id"] == spec.run_id
        assert config["budget"]["total_env_steps"] == spec.budget.total_env_steps
        assert set(config) >= {"suite", "env", "method", "seed", "method_config", "git_commit"}
        assert set(config) >= {"versions", "command", "manifest"}
    assert scaled.run_id.endswith("__x0.1") and scaled.budget.total_env_steps == 100
