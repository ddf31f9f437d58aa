"""The run's own history journal, which makes W&B resume lose nothing and duplicate nothing.

wandb-core writes a run's ``.wandb`` file through a buffer that reaches the disk only every
``x_transaction_log_flush_interval`` (15 s) or at ``finish``: a run killed hard (SIGKILL, OOM, a
lost node) loses the rows it logged in its last seconds, or all of them (the killed segment then
holds only the 7-byte file header), although the method has already checkpointed past them.

So the tracker first appends every row to ``history.jsonl`` in the run folder (flushed and fsynced:
it survives a SIGKILL and, with the checkpoint, a machine crash) and then hands it to W&B. When the
run resumes, :func:`rows_to_replay` finds the journal rows that no earlier W&B segment of the run
holds durably and the tracker logs them again, first, into the resumed W&B run; rows the method
itself logs again after resuming (a row logged just before the kill, whose checkpoint was not
written yet) are recognised by :func:`row_key` and not sent twice.

A row's identity is ``(env_steps, its metric keys)``: methods log at most one row with the same
keys per env step. To restart a run from scratch, delete its whole run folder (not only the
checkpoint), or its journal will hide the new run's rows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

HISTORY_FILE = "history.jsonl"
"""The journal's file name in the run folder."""
STEP = "env_steps"

RowKey = tuple[int, tuple[str, ...]]


def row_key(step: int, metrics: Iterable[str]) -> RowKey:
    """A row's identity: its step and its metric keys (W&B's own ``_`` keys and the step left out)."""
    return int(step), tuple(sorted(k for k in metrics if k != STEP and not k.startswith("_")))


def append_row(path: Path, row: Mapping[str, Any], step: int) -> None:
    """Append one row to the journal durably (flush + fsync) before it goes anywhere else."""
    line = json.dumps({"step": int(step), "row": dict(row)})  # NaN/inf round-trip as NaN/Infinity
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_journal(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The journal's ``(step, row)`` pairs in order; a torn last line (killed mid-write) is ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
            out.append((int(entry["step"]), dict(entry["row"])))
        except (ValueError, KeyError, TypeError):
            if number == len(lines) - 1:
                break  # the write the kill interrupted
            raise ValueError(
                f"{path}: line {number + 1} is not a journal entry: {line[:80]!r}"
            ) from None
    return out


def segment_files(wandb_root: Path, wandb_id: str) -> list[Path]:
    """The ``.wandb`` files of every W&B segment of the run (offline and online folders)."""
    return sorted(wandb_root.glob(f"*run-*-{wandb_id}/run-{wandb_id}.wandb"))


def durable_keys(files: Iterable[Path]) -> set[RowKey]:
    """Keys of the history rows the given ``.wandb`` files hold (complete records only)."""
    from analysis.wandb_offline import WandbFileError, read_records

    keys: set[RowKey] = set()
    for path in files:
        try:
            records, _ = read_records(path)
        except (WandbFileError, OSError):
            continue  # e.g. only the file header made it to disk
        for record in records:
            if record.WhichOneof("record_type") != "history":
                continue
            names, step = [], None
            for item in record.history.item:
                name = item.key or ".".join(item.nested_key)
                names.append(name)
                if name == STEP:
                    step = json.loads(item.value_json)
            if isinstance(step, int | float) and math.isfinite(step):
                keys.add(row_key(int(step), names))
    return keys


def rows_to_replay(
    journal: list[tuple[int, dict[str, Any]]], durable: set[RowKey]
) -> list[tuple[int, dict[str, Any]]]:
    """Journal rows that no earlier W&B segment holds, in journal order."""
    return [(step, row) for step, row in journal if row_key(step, row) not in durable]
