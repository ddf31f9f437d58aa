"""W&B tracking for one run: the mode rule, the online -> offline fallback, ``config.yml`` and the
``progress.json`` the live terminal view reads.

Mode rule (:func:`resolve_mode`): an explicit flag wins, then ``WANDB_MODE``, then ``online`` when
an API key is configured (``WANDB_API_KEY`` or a netrc entry for the W&B host), else ``offline``.
A run never crashes or hangs because W&B is unreachable: before an online init the server is probed
with a short TCP connect, and a failed online init (``init_timeout``) falls back to offline, saying
so on stderr (the run's ``run.log``) and in ``config.yml``.
"""

from __future__ import annotations

import json
import math
import netrc
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from mbmpo.protocols import ENV_STEPS, EVAL_RETURN_MEAN
from suites import journal

MODES = ("online", "offline", "disabled")
"""Modes a user may ask for."""
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}
DEFAULT_BASE_URL = "https://api.wandb.ai"
DEFAULT_PROJECT = "mbmpo-suite"
VERSION_PACKAGES = (
    "mbmpo-suite",
    "torch",
    "numpy",
    "gymnasium",
    "mujoco",
    "stable-baselines3",
    "sb3-contrib",
    "wandb",
)
"""Packages whose versions go into every run's config."""
PROGRESS_FILE = "progress.json"
CONFIG_FILE = "config.yml"


@dataclass(frozen=True)
class ModeDecision:
    """The W&B mode a run asks for, and why."""

    mode: str
    """One of :data:`MODES`."""
    reason: str
    """Which rule decided, e.g. ``"--wandb-mode flag"`` or ``"no API key configured"``."""


def normalise_mode(mode: str, where: str) -> str:
    """``mode`` lower-cased with W&B's aliases resolved.

    :raises ValueError: naming ``where`` and the allowed values.
    """
    value = _MODE_ALIASES.get(mode.strip().lower(), mode.strip().lower())
    if value not in MODES:
        raise ValueError(f"{where}: unknown W&B mode {mode!r}; allowed: {', '.join(MODES)}")
    return value


def base_url(environ: Mapping[str, str] | None = None) -> str:
    """The W&B server URL (``WANDB_BASE_URL`` or the public cloud)."""
    env = os.environ if environ is None else environ
    return env.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def has_api_key(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a W&B API key is configured: ``WANDB_API_KEY``, or a netrc entry (``$NETRC`` or
    ``~/.netrc``) for the W&B host."""
    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY", "").strip():
        return True
    host = urlparse(base_url(env)).hostname or "api.wandb.ai"
    netrc_path = Path(env["NETRC"]) if env.get("NETRC") else Path.home() / ".netrc"
    if not netrc_path.is_file():
        return False
    try:
        entry = netrc.netrc(str(netrc_path)).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return False
    return bool(entry and entry[2])


def resolve_mode(explicit: str | None, environ: Mapping[str, str] | None = None) -> ModeDecision:
    """Apply the mode rule: explicit flag, then ``WANDB_MODE``, then online iff an API key is set.

    :raises ValueError: for an unknown explicit mode or ``WANDB_MODE`` value.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return ModeDecision(normalise_mode(explicit, "--wandb-mode"), "--wandb-mode flag")
    if env.get("WANDB_MODE", "").strip():
        return ModeDecision(normalise_mode(env["WANDB_MODE"], "WANDB_MODE"), "WANDB_MODE")
    if has_api_key(env):
        return ModeDecision("online", "an API key is configured")
    return ModeDecision("offline", "no API key configured")


def server_reachable(url: str, timeout_s: float) -> bool:
    """Whether a TCP connection to ``url``'s host and port opens within ``timeout_s``."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def git_state(repo: Path | None = None) -> tuple[str, bool | None]:
    """``(commit, dirty)`` of the code's git checkout, or ``("unknown", None)`` outside a repo.

    ``dirty`` ignores untracked files.
    """
    root = repo or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return (commit or "unknown"), (bool(status.strip()) if commit else None)


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`VERSION_PACKAGES` plus Python."""
    versions = {"python": sys.version.split()[0]}
    for name in VERSION_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as YAML atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False))
    os.replace(tmp, path)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(data), indent=1, default=str))
    os.replace(tmp, path)


def wandb_env(run_dir: Path) -> dict[str, str]:
    """The ``WANDB_*_DIR`` variables pointing inside ``run_dir`` (W&B writes nothing in $HOME)."""
    wandb_root = run_dir / "wandb"
    return {
        "WANDB_DIR": str(run_dir),
        "WANDB_CONFIG_DIR": str(wandb_root / ".config"),
        "WANDB_CACHE_DIR": str(wandb_root / ".cache"),
        "WANDB_DATA_DIR": str(wandb_root / ".data"),
    }


class WandbTracker:
    """A :class:`mbmpo.protocols.Tracker` that logs one run to W&B (or nowhere, when disabled) and
    rewrites ``progress.json`` in the run folder at each :meth:`log` call.

    Call :meth:`start` before logging and :meth:`finish` at the end (also on failure).
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        wandb_id: str,
        project: str,
        group: str,
        job_type: str,
        name: str,
        tags: list[str],
        config: Mapping[str, Any],
        mode: ModeDecision,
        init_timeout_s: float = 60.0,
        probe_timeout_s: float = 3.0,
        probe: bool = True,
        say: Callable[[str], None] | None = None,
        progress_extra: Mapping[str, Any] | None = None,
    ) -> None:
        """
        :param run_dir: the run's folder; W&B's dirs go under ``run_dir/wandb``.
        :param wandb_id: stable W&B run id (a resumed run reuses it).
        :param config: the W&B run config (see the suites contract for its keys).
        :param mode: the requested mode (see :func:`resolve_mode`).
        :param init_timeout_s: W&B's ``init_timeout`` for an online init.
        :param probe: check the server with a ``probe_timeout_s`` TCP connect before an online
            init (skipping W&B's own, slower, retries when nothing listens).
        :param say: where status lines go (default: stderr, i.e. the run's ``run.log``).
        :param progress_extra: constant fields added to ``progress.json`` (run id, budget).
        """
        self.run_dir = run_dir
        self.wandb_id = wandb_id
        self.project = project
        self.group = group
        self.job_type = job_type
        self.name = name
        self.tags = list(tags)
        self.config = dict(config)
        self.requested = mode
        self.init_timeout_s = init_timeout_s
        self.probe_timeout_s = probe_timeout_s
        self.probe = probe
        self._say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.mode = mode.mode
        """The mode in effect after :meth:`start` (``offline`` after a fallback)."""
        self.fallback_reason: str | None = None
        """Why an online run fell back to offline, if it did."""
        self._run: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._progress: dict[str, Any] = dict(progress_extra or {})
        self._progress.update({ENV_STEPS: 0, EVAL_RETURN_MEAN: None, "rows": 0})
        self._journal = run_dir / journal.HISTORY_FILE
        self._journaled: set[journal.RowKey] = set()
        self._dropped = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Point W&B's dirs into the run folder and init the W&B run (with offline fallback)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_progress()
        history = journal.read_journal(self._journal)  # rows of earlier attempts of this run
        self._journaled = {journal.row_key(step, row) for step, row in history}
        earlier = journal.segment_files(self._wandb_root(), self.wandb_id)
        if self.requested.mode == "disabled":
            self._say("W&B: disabled; metrics go to progress.json only")
            return
        for key, value in wandb_env(self.run_dir).items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
            if key != "WANDB_DIR":
                Path(value).mkdir(parents=True, exist_ok=True)
        import wandb

        if self.requested.mode == "online":
            url = base_url()
            if self.probe and not server_reachable(url, self.probe_timeout_s):
                self._fall_back(f"server {url} not reachable within {self.probe_timeout_s:g}s")
            else:
                before = set(self._wandb_root().glob(f"run-*-{self.wandb_id}"))
                try:
                    self._run = self._init(wandb, "online")
                except Exception as exc:  # any failure to reach/auth W&B must not kill the run
                    wandb.teardown()
                    for partial in set(self._wandb_root().glob(f"run-*-{self.wandb_id}")) - before:
                        shutil.rmtree(partial, ignore_errors=True)
                    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    self._fall_back(f"online init failed: {type(exc).__name__}: {first_line}")
        if self._run is None:
            self._run = self._init(wandb, "offline")
        self._run.define_metric("*", step_metric=ENV_STEPS)
        self._say(f"W&B: {self.mode} run {self.wandb_id} in {self._run.dir}")
        if history:
            self._replay(history, earlier)

    def _replay(self, history: list[tuple[int, dict[str, Any]]], earlier: list[Path]) -> None:
        """Re-send the journal rows no earlier W&B segment holds (see :mod:`suites.journal`)."""
        missing = journal.rows_to_replay(history, journal.durable_keys(earlier))
        for step, row in missing:
            self._run.log({**row, ENV_STEPS: step})
        self._say(
            f"W&B: resumed run; {len(history)} rows logged before, {len(missing)} of them re-sent "
            "from history.jsonl (lost by the earlier W&B segment)"
        )

    def _init(self, wandb: Any, mode: str) -> Any:
        self.mode = mode
        return wandb.init(
            project=self.project,
            group=self.group,
            job_type=self.job_type,
            name=self.name,
            id=self.wandb_id,
            resume="allow",
            tags=self.tags,
            config=self.config,
            dir=str(self.run_dir),
            mode=mode,  # type: ignore[arg-type]
            settings=wandb.Settings(
                init_timeout=self.init_timeout_s,
                console="off",  # the run's stdout/stderr already go to run.log
                x_disable_stats=True,  # no system-metrics sampler competing for the 2 cores
                save_code=False,
            ),
        )

    def _fall_back(self, why: str) -> None:
        self.fallback_reason = why
        self._say(
            f"W&B: {why}; falling back to OFFLINE mode. Upload later with: "
            f"wandb sync {self._wandb_root()}/offline-run-*-{self.wandb_id}"
        )

    def _wandb_root(self) -> Path:
        return self.run_dir / "wandb"

    def finish(self, exit_code: int = 0) -> None:
        """Finish the W&B run with ``exit_code`` (non-zero marks it failed) and restore the env."""
        try:
            if self._run is not None:
                import wandb

                self._run.finish(exit_code=exit_code)
                self._run = None
                # finish() can return before the .wandb file's last block is written; shutting
                # the W&B service down flushes it, so DONE is only written over a complete file
                wandb.teardown()
        finally:
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env = {}

    # -- Tracker protocol --------------------------------------------------------------------

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Log one row at ``step`` real env steps (W&B's x-axis is ``env_steps``)."""
        row: dict[str, Any] = {k: _plain(v) for k, v in metrics.items()}
        row[ENV_STEPS] = int(step)
        key = journal.row_key(step, row)
        if key in self._journaled:  # logged before the resume (the checkpoint predates it)
            self._dropped += 1
            if self._dropped == 1:
                self._say(f"W&B: row at {step} env steps was logged before the resume; not resent")
        else:
            journal.append_row(self._journal, row, step)  # durable before W&B sees it
            self._journaled.add(key)
            if self._run is not None:
                self._run.log(row)
        self._progress[ENV_STEPS] = int(step)
        self._progress["rows"] += 1
        value = row.get(EVAL_RETURN_MEAN)
        if isinstance(value, float) and math.isfinite(value):
            self._progress[EVAL_RETURN_MEAN] = value
        self._write_progress()

    def summary(self, values: Mapping[str, Any]) -> None:
        """Set final values in the W&B run summary."""
        if self._run is not None:
            for key, value in values.items():
                self._run.summary[key] = _plain(value)

    def _write_progress(self) -> None:
        self._progress["updated"] = time.time()
        write_json(self.run_dir / PROGRESS_FILE, self._progress)


def _plain(value: Any) -> Any:
    """numpy/torch scalars -> Python floats; other values unchanged."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
