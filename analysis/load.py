"""Load suite runs into one tidy DataFrame, from a folder of offline W&B runs or from W&B online.

Tidy columns (the suites <-> analysis contract): ``run_id, suite, env, method, seed, scale,
env_steps, metric, value``, one row per logged numeric value. The segments of a resumed run (several
``offline-run-*`` folders with the same W&B id) are merged: for each ``(run_id, env_steps, metric)``
the value logged last (latest segment, then latest row) is kept.

Offline files are parsed once and cached (pickle per ``.wandb`` file, keyed by the file's resolved
path, size and mtime) under ``$MBMPO_ANALYSIS_CACHE`` or ``./.analysis_cache``; a file that changed
since is re-read. The finished frame of a folder (and suite) is cached too, valid while the set of
files and their keys is unchanged.

Runs whose config lacks env/method/seed (not suite runs) are skipped with a
:class:`NotASuiteRunWarning`; files that end mid-record are read up to their last complete record
with a :class:`TruncatedRunWarning`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.wandb_offline import (
    OfflineRun,
    WandbFileError,
    config_get,
    find_run_files,
    read_records,
    read_run,
)

TIDY_COLUMNS = ["run_id", "suite", "env", "method", "seed", "scale", "env_steps", "metric", "value"]
STEP_KEY = "env_steps"
ONLINE_PREFIX = "wandb://"
CACHE_ENV = "MBMPO_ANALYSIS_CACHE"
CACHE_FORMAT = 1
_RUN_ID_RE = re.compile(
    r"^(?P<env>.+?)__(?P<method>.+?)__s(?P<seed>\d+)(?:__x(?P<scale>[0-9.eE+-]+))?$"
)


class NotASuiteRunWarning(UserWarning):
    """A run under the source folder lacks the suite metadata (env/method/seed) and was skipped."""


class TruncatedRunWarning(UserWarning):
    """A run file ended in the middle of a record; its complete records were used."""


@dataclass(frozen=True)
class RunInfo:
    """One suite run (all its segments merged): identity, config and where it came from."""

    run_id: str
    """Contract run id ``<env>__<method>__s<seed>[__x<scale>]``."""
    wandb_id: str
    """W&B run id."""
    suite: str
    """Suite name (config ``suite``, else the W&B group)."""
    env: str
    """Env name."""
    method: str
    """Method name."""
    seed: int
    """Seed."""
    scale: float
    """Budget scale (1.0 = the paper's budget)."""
    name: str
    """W&B display name of the latest segment."""
    tags: tuple[str, ...]
    """W&B tags of the latest segment."""
    config: dict[str, Any]
    """Merged config (later segments override earlier ones)."""
    summary: dict[str, Any]
    """Summary of the latest segment."""
    sources: tuple[str, ...] = field(default_factory=tuple)
    """The ``.wandb`` files (or W&B path) it was read from, oldest segment first."""
    truncated: bool = False
    """True when any segment's file ended mid-record (a killed run)."""
    finished: bool = False
    """True when the latest segment recorded a clean exit (exit code 0)."""

    @property
    def git_commit(self) -> str:
        return str(config_get(self.config, "git_commit", "") or "")

    @property
    def versions(self) -> dict[str, str]:
        value = config_get(self.config, "versions", {}) or {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


# ----------------------------------------------------------------------------- cache


def cache_dir_default() -> Path:
    """``$MBMPO_ANALYSIS_CACHE`` or ``./.analysis_cache``."""
    return Path(os.environ.get(CACHE_ENV) or ".analysis_cache")


def _cache_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def read_run_cached(path: Path, cache_dir: Path | None) -> OfflineRun:
    """:func:`read_run` through the per-file pickle cache (``cache_dir=None`` disables it)."""
    if cache_dir is None:
        return read_run(path)
    key = _cache_key(path)
    entry = cache_dir / (hashlib.sha1(key[0].encode()).hexdigest() + ".pkl")
    if entry.exists():
        try:
            with entry.open("rb") as fh:
                stored = pickle.load(fh)
            if stored.get("format") == CACHE_FORMAT and tuple(stored.get("key", ())) == key:
                return stored["run"]
        except Exception:  # unreadable or stale entry: fall through and rewrite it
            pass
    run = read_run(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        pickle.dump({"format": CACHE_FORMAT, "key": key, "run": run}, fh, protocol=5)
    tmp.replace(entry)
    return run


# ----------------------------------------------------------------------------- metadata


def _run_identity(
    config: Mapping[str, Any], wandb_id: str, group: str, job_type: str, where: str
) -> tuple[str, str, str, str, int, float] | None:
    """(run_id, suite, env, method, seed, scale) from a run's config; the contract run id is the
    fallback for env/method/seed/scale. ``None`` when env, method or seed cannot be found."""
    run_id = str(config_get(config, "run_id", "") or "")
    parsed = _RUN_ID_RE.match(run_id)
    parts = parsed.groupdict() if parsed else {}
    env = config_get(config, "env", parts.get("env"))
    method = config_get(config, "method", parts.get("method") or job_type or None)
    seed = config_get(config, "seed", parts.get("seed"))
    scale = config_get(config, "scale", parts.get("scale") or 1.0)
    suite = config_get(config, "suite", group) or group
    if env is None or method is None or seed is None:
        missing = [k for k, v in (("env", env), ("method", method), ("seed", seed)) if v is None]
        warnings.warn(
            f"{where}: skipped W&B run {wandb_id!r}: its config lacks {', '.join(missing)}"
            " (not a suite run)",
            NotASuiteRunWarning,
            stacklevel=3,
        )
        return None
    if not run_id:
        run_id = f"{env}__{method}__s{int(seed)}" + ("" if float(scale) == 1.0 else f"__x{scale:g}")
    return run_id, str(suite), str(env), str(method), int(seed), float(scale)


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def tidy_rows(info: RunInfo, history: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Tidy tuples (in :data:`TIDY_COLUMNS` order) for every numeric value of ``history``.

    Rows without ``env_steps`` and W&B's own ``_``-prefixed keys are left out; values that are not
    numbers (text, media) are skipped.
    """
    out = []
    head = (info.run_id, info.suite, info.env, info.method, info.seed, info.scale)
    for row in history:
        step = _numeric(row.get(STEP_KEY))
        if step is None:
            continue
        for key, raw in row.items():
            if key == STEP_KEY or key.startswith("_"):
                continue
            value = _numeric(raw)
            if value is not None:
                out.append((*head, int(step), key, value))
    return out


def frame_from_rows(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """The tidy DataFrame (typed, de-duplicated keeping the last value, sorted)."""
    df = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    df = df.astype(
        {
            "run_id": "string",
            "suite": "string",
            "env": "string",
            "method": "string",
            "seed": "int64",
            "scale": "float64",
            "env_steps": "int64",
            "metric": "string",
            "value": "float64",
        }
    )
    df = df.drop_duplicates(subset=["run_id", "env_steps", "metric"], keep="last")
    return df.sort_values(["run_id", "metric", "env_steps"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- offline


def _merge_segments(segments: list[OfflineRun]) -> tuple[dict[str, Any], list[OfflineRun]]:
    ordered = sorted(segments, key=lambda s: (s.start_time, str(s.path)))
    config: dict[str, Any] = {}
    for seg in ordered:
        config.update(seg.config)
    return config, ordered


def _collect_offline(
    source: Path, suite: str | None, cache_dir: Path | None
) -> list[tuple[RunInfo, list[dict[str, Any]]]]:
    by_id: dict[tuple[str, str], list[OfflineRun]] = {}
    for path in find_run_files(source):
        try:
            seg = read_run_cached(path, cache_dir)
        except WandbFileError:
            records, _ = read_records(path)  # raises again for a corrupt file
            if any(r.WhichOneof("record_type") == "run" for r in records):
                raise
            # a run killed before wandb-core first flushed its buffer leaves only the file header;
            # the suite's resumed segment re-sends those rows from the run's history.jsonl
            warnings.warn(
                f"{path}: skipped: holds no run record (its run was killed before W&B wrote it)",
                TruncatedRunWarning,
                stacklevel=3,
            )
            continue
        by_id.setdefault((seg.project, seg.run_id), []).append(seg)
    out = []
    for (_, wandb_id), segments in sorted(by_id.items()):
        config, ordered = _merge_segments(segments)
        last = ordered[-1]
        if suite is not None and (config_get(config, "suite", None) or last.group) != suite:
            continue
        ident = _run_identity(config, wandb_id, last.group, last.job_type, str(last.path))
        if ident is None:
            continue
        run_id, run_suite, env, method, seed, scale = ident
        if suite is not None and run_suite != suite:
            continue
        for seg in ordered:
            if seg.truncated:
                warnings.warn(
                    f"{seg.path}: file ends mid-record (run killed, or still being written:"
                    " wandb.finish() can return before the last block is flushed;"
                    " wandb.teardown() flushes it); read up to the last complete record",
                    TruncatedRunWarning,
                    stacklevel=3,
                )
        info = RunInfo(
            run_id=run_id,
            wandb_id=wandb_id,
            suite=run_suite,
            env=env,
            method=method,
            seed=seed,
            scale=scale,
            name=last.name,
            tags=last.tags,
            config=config,
            summary=dict(last.summary),
            sources=tuple(str(s.path) for s in ordered),
            truncated=any(s.truncated for s in ordered),
            finished=last.exit_code == 0,
        )
        history = [row for seg in ordered for row in seg.history]
        out.append((info, history))
    return out


# ----------------------------------------------------------------------------- online


def _collect_online(path: str, suite: str | None) -> list[tuple[RunInfo, list[dict[str, Any]]]]:
    """Runs of W&B project ``entity/project`` (filtered by group = suite) with their full history."""
    import wandb

    try:
        api = wandb.Api()
    except Exception as exc:
        raise RuntimeError(
            f"cannot read {ONLINE_PREFIX}{path}: {exc} (log in with `wandb login`, or pass a folder"
            " of offline runs instead)"
        ) from exc
    runs = api.runs(path, filters={"group": suite} if suite else None)
    out = []
    for run in runs:
        config = dict(run.config)
        ident = _run_identity(config, run.id, run.group or "", run.job_type or "", path)
        if ident is None:
            continue
        run_id, run_suite, env, method, seed, scale = ident
        info = RunInfo(
            run_id=run_id,
            wandb_id=run.id,
            suite=run_suite,
            env=env,
            method=method,
            seed=seed,
            scale=scale,
            name=run.name,
            tags=tuple(run.tags),
            config=config,
            summary=dict(run.summary),
            sources=(f"{ONLINE_PREFIX}{path}/{run.id}",),
            finished=run.state == "finished",
        )
        out.append((info, list(run.scan_history())))
    return out


# ----------------------------------------------------------------------------- entry points


def parse_source(source: str | Path) -> tuple[str, str]:
    """``("wandb", "entity/project")`` for ``wandb://entity/project``, else ``("dir", path)``."""
    text = str(source)
    if text.startswith(ONLINE_PREFIX):
        path = text[len(ONLINE_PREFIX) :].strip("/")
        if path.count("/") != 1 or not all(path.split("/")):
            raise ValueError(f"W&B source must look like wandb://entity/project, got {text!r}")
        return "wandb", path
    return "dir", text


def _resolve_cache(cache_dir: Path | None | bool) -> Path | None:
    if cache_dir is True:
        return cache_dir_default()
    if cache_dir is False or cache_dir is None:
        return None
    return Path(cache_dir)


def collect(
    source: str | Path, suite: str | None = None, *, cache_dir: Path | None | bool = True
) -> list[tuple[RunInfo, list[dict[str, Any]]]]:
    """Every run of ``source`` (filtered by ``suite``) with its merged history rows.

    ``cache_dir``: ``True`` for the default cache folder, a path, or ``None``/``False`` for none.
    """
    kind, where = parse_source(source)
    if kind == "wandb":
        return _collect_online(where, suite)
    return _collect_offline(Path(where), suite, _resolve_cache(cache_dir))


def _frame_uncached(source: str | Path, suite: str | None, cache: Path | None) -> pd.DataFrame:
    rows: list[tuple[Any, ...]] = []
    for info, history in collect(source, suite, cache_dir=cache):
        rows.extend(tidy_rows(info, history))
    return frame_from_rows(rows)


def load_runs(
    source: str | Path, suite: str | None = None, *, cache_dir: Path | None | bool = True
) -> pd.DataFrame:
    """The tidy DataFrame of every run in ``source`` (folder of offline runs, any depth, or
    ``wandb://entity/project``), optionally only suite ``suite``. See the module docstring.

    Besides the per-file cache, the finished frame of a folder is cached too (one entry per
    folder and suite, valid while no file was added, removed or changed); the warnings of the
    call that built it are raised again on a hit.
    """
    cache = _resolve_cache(cache_dir)
    kind, where = parse_source(source)
    if kind == "wandb" or cache is None:
        return _frame_uncached(source, suite, cache)
    keys = [_cache_key(f) for f in find_run_files(where)]
    ident = repr((CACHE_FORMAT, str(Path(where).resolve()), suite))
    entry = cache / ("frame-" + hashlib.sha1(ident.encode()).hexdigest() + ".pkl")
    if entry.exists():
        try:
            with entry.open("rb") as fh:
                stored = pickle.load(fh)
            if stored.get("keys") == keys:
                for category, message in stored["warnings"]:
                    warnings.warn(message, category, stacklevel=2)
                return stored["frame"].copy()
        except Exception:  # unreadable or stale entry: rebuild it
            pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = _frame_uncached(source, suite, cache)
    raised = [(w.category, str(w.message)) for w in caught]
    for category, message in raised:
        warnings.warn(message, category, stacklevel=2)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        pickle.dump({"keys": keys, "frame": frame, "warnings": raised}, fh, protocol=5)
    tmp.replace(entry)
    return frame


def load_run_info(
    source: str | Path, suite: str | None = None, *, cache_dir: Path | None | bool = True
) -> list[RunInfo]:
    """Per-run metadata (config, versions, git commit, sources) of the runs :func:`load_runs` reads."""
    return [info for info, _ in collect(source, suite, cache_dir=cache_dir)]


def load_runs_and_info(
    source: str | Path, suites: Iterable[str] | None = None, *, cache_dir: Path | None | bool = True
) -> tuple[pd.DataFrame, list[RunInfo]]:
    """:func:`load_runs` and :func:`load_run_info` in one pass, for several suites (all if None)."""
    rows: list[tuple[Any, ...]] = []
    infos: list[RunInfo] = []
    for suite in list(suites) if suites else [None]:
        for info, history in collect(source, suite, cache_dir=cache_dir):
            infos.append(info)
            rows.extend(tidy_rows(info, history))
    return frame_from_rows(rows), infos
