"""Reader of wandb 0.31 offline run files (``run-<id>.wandb``).

``wandb.Api`` cannot read offline runs and wandb >= 0.30 removed its internal reader, so this module
decodes the file itself. The format (private to wandb; checked against files written by the pinned
wandb 0.31.0) is a LevelDB-style log:

- a 7-byte file header: ``b":W&B"``, the magic ``0xBEE1`` (uint16 little endian) and version ``0``;
- then 32 KiB blocks counted from the start of the file (the header sits in block 0). Each record
  chunk has a 7-byte header ``<crc32: uint32 LE><length: uint16 LE><type: uint8>`` followed by
  ``length`` bytes. ``type`` is FULL (1), or FIRST (2) / MIDDLE (3) / LAST (4) for a record split
  across blocks. When fewer than 7 bytes are left in a block, they are zero padding.
- ``crc32`` is plain zlib CRC-32 (not LevelDB's masked CRC-32C) over the type byte followed by the
  chunk's data.
- each reassembled record is a serialised ``wandb.proto.wandb_internal_pb2.Record``: ``run``
  (id, group, tags, name, initial config), ``config`` and ``summary`` (incremental updates with
  ``key``/``nested_key`` and ``value_json``), ``history`` (one logged row each), ``exit`` ...

A file whose final block stops mid-chunk, or whose last chunk fails its CRC with nothing but
zeros after it (a run killed while writing), is read up to the last complete record and flagged
``truncated``; a CRC mismatch or malformed chunk anywhere else raises :class:`WandbFileError`
naming the file and byte offset.
"""

from __future__ import annotations

import fnmatch
import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as _pb

pb: Any = _pb  # generated protobuf module (no type stubs)

FILE_MAGIC = b":W&B"
FILE_HEADER = struct.Struct("<4sHB")  # magic, 0xBEE1, version
FILE_HEADER_LEN = FILE_HEADER.size  # 7
FILE_IDENT = 0xBEE1
FILE_VERSION = 0
BLOCK_LEN = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
CHUNK_HEADER_LEN = CHUNK_HEADER.size  # 7
ZERO, FULL, FIRST, MIDDLE, LAST = 0, 1, 2, 3, 4


class WandbFileError(ValueError):
    """A ``.wandb`` file that is not a wandb run log or is corrupt (the message names file+offset)."""


@dataclass(frozen=True)
class OfflineRun:
    """Everything analysis needs from one ``run-<id>.wandb`` file (one run *segment*: a resumed run
    writes a second file with the same ``run_id``)."""

    path: Path
    """The ``.wandb`` file read."""
    run_id: str
    """W&B run id (stable across resumes)."""
    name: str
    """Display name (``<env>__<method>__<seed>__<time>`` for suite runs)."""
    group: str
    """W&B group (the suite name for suite runs)."""
    project: str
    """W&B project."""
    job_type: str
    """W&B job type (the method for suite runs)."""
    tags: tuple[str, ...]
    """W&B tags."""
    start_time: float
    """Seconds since the epoch when this segment started (orders the segments of a resumed run)."""
    config: dict[str, Any]
    """Final config after all updates (``_wandb`` internals removed)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Every logged row in order; nested keys joined with ``.``; includes ``_step`` etc."""
    summary: dict[str, Any] = field(default_factory=dict)
    """Final summary (nested dicts kept nested, ``_wandb`` internals removed)."""
    exit_code: int | None = None
    """Exit code from the run's exit record, ``None`` when the run never exited cleanly."""
    truncated: bool = False
    """True when the file ended in the middle of a record (the run was killed while writing)."""
    wandb_version: str = ""
    """The wandb version that wrote the file (from its header record)."""


def iter_record_bytes(path: str | Path) -> Iterator[bytes]:
    """Yield each reassembled record payload of ``path``; see the module docstring for the format.

    Stops silently at a truncated tail; use :func:`read_records` to learn whether that happened.
    """
    records, _ = _read_payloads(Path(path))
    yield from records


def _read_payloads(path: Path) -> tuple[list[bytes], bool]:
    """All complete record payloads of ``path`` and whether the file ended mid-record."""
    data = path.read_bytes()
    if len(data) < FILE_HEADER_LEN:
        raise WandbFileError(f"{path}: too short for a wandb run file ({len(data)} bytes)")
    magic, ident, version = FILE_HEADER.unpack_from(data, 0)
    if magic != FILE_MAGIC or ident != FILE_IDENT:
        raise WandbFileError(f"{path}: not a wandb run file (bad header {data[:7]!r})")
    if version != FILE_VERSION:
        raise WandbFileError(
            f"{path}: unsupported wandb log version {version} (this reader handles {FILE_VERSION})"
        )
    records: list[bytes] = []
    pending: bytearray | None = None  # data of a FIRST..MIDDLE chain awaiting its LAST chunk
    pos = FILE_HEADER_LEN
    end = len(data)
    while pos < end:
        left_in_block = BLOCK_LEN - pos % BLOCK_LEN
        if left_in_block < CHUNK_HEADER_LEN:  # trailer padding of a block
            pos += left_in_block
            continue
        if pos + CHUNK_HEADER_LEN > end:
            return records, True
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        if kind == ZERO and length == 0 and crc == 0:
            # zero-filled rest of a block (pre-allocated space): skip to the next block
            if any(data[pos : min(end, pos + left_in_block)]):
                raise WandbFileError(f"{path}: corrupt chunk header at byte {pos}")
            pos += left_in_block
            continue
        if CHUNK_HEADER_LEN + length > left_in_block:
            raise WandbFileError(
                f"{path}: corrupt chunk at byte {pos}: length {length} crosses the block boundary"
            )
        start = pos + CHUNK_HEADER_LEN
        if start + length > end:
            return records, True
        payload = data[start : start + length]
        actual = zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
        if actual != crc:
            if not any(data[start + length :]):
                # the last chunk of the file, torn by a killed writer (only zeros or nothing follow)
                return records, True
            raise WandbFileError(
                f"{path}: CRC mismatch at byte {pos} (stored {crc:#010x}, computed {actual:#010x}):"
                " the file is corrupt"
            )
        pos = start + length
        if kind == FULL:
            if pending is not None:
                raise WandbFileError(f"{path}: FULL chunk at byte {pos} inside a split record")
            records.append(payload)
        elif kind == FIRST:
            if pending is not None:
                raise WandbFileError(f"{path}: FIRST chunk at byte {pos} inside a split record")
            pending = bytearray(payload)
        elif kind in (MIDDLE, LAST):
            if pending is None:
                raise WandbFileError(f"{path}: chunk type {kind} at byte {pos} without a FIRST")
            pending += payload
            if kind == LAST:
                records.append(bytes(pending))
                pending = None
        else:
            raise WandbFileError(f"{path}: unknown chunk type {kind} at byte {pos}")
    return records, pending is not None


def read_records(path: str | Path) -> tuple[list[Any], bool]:
    """Decode every record of ``path``; returns ``(records, truncated)``."""
    path = Path(path)
    payloads, truncated = _read_payloads(path)
    records = []
    for i, payload in enumerate(payloads):
        rec = pb.Record()
        try:
            rec.ParseFromString(payload)
        except Exception as exc:  # protobuf's DecodeError
            raise WandbFileError(f"{path}: record {i} is not a wandb Record: {exc}") from exc
        records.append(rec)
    return records, truncated


def _item_path(item: Any) -> tuple[str, ...]:
    """The key of a config/summary/history item as a tuple of nested parts."""
    nested = item.nested_key
    return tuple(nested) if nested else (item.key,)


def _decode_json(text: str) -> Any:
    """``json.loads`` with a fast path for plain numbers (most history values)."""
    if text.isdigit() or (text[0] == "-" and text[1:].isdigit()):
        return int(text)
    if text[0] in '"[{tfn':  # strings, lists, objects, true/false/null
        return json.loads(text)
    try:
        return float(text)  # also NaN / Infinity / -Infinity, as wandb writes them
    except ValueError:
        return json.loads(text)


def _item_value(item: Any) -> Any:
    """The decoded value of an item (``value_json``; history items may use typed fields)."""
    text = item.value_json
    if text:
        return _decode_json(text)
    if isinstance(item, pb.HistoryItem):
        which = item.WhichOneof("value")
        if which is None or which == "none":
            return None
        if which == "json":
            return json.loads(item.json)
        return getattr(item, which)
    return None


def _set_nested(target: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _del_nested(target: dict[str, Any], parts: Sequence[str]) -> None:
    node: Any = target
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


class _LazyUpdates:
    """Config/summary updates kept as raw JSON, the last write per key path winning, decoded once
    at the end (a run writes a summary record per logged row; decoding each would dominate)."""

    def __init__(self) -> None:
        self.ops: dict[tuple[str, ...], str | None] = {}  # path -> value_json, None = removed

    def apply(self, update: Any) -> None:
        """Record a ConfigRecord/SummaryRecord's ``update`` and ``remove`` items, in order."""
        ops = self.ops
        for item in update.update:
            path = _item_path(item)
            ops.pop(path, None)  # re-insert: keeps the order of the last writes
            ops[path] = item.value_json
        for item in update.remove:
            path = _item_path(item)
            ops.pop(path, None)
            ops[path] = None

    def result(self) -> dict[str, Any]:
        """The nested dict after every update, in order."""
        out: dict[str, Any] = {}
        for path, text in self.ops.items():
            if text is None:
                _del_nested(out, path)
            else:
                _set_nested(out, path, json.loads(text) if text else None)
        return out


def _history_row(history: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for item in history.item:
        row[".".join(_item_path(item))] = _item_value(item)
    return row


def read_run(path: str | Path) -> OfflineRun:
    """Read one ``run-<id>.wandb`` file into an :class:`OfflineRun`.

    :raises WandbFileError: naming the file when it is not a wandb log, is corrupt, or holds no
        run record.
    """
    path = Path(path)
    records, truncated = read_records(path)
    config = _LazyUpdates()
    summary = _LazyUpdates()
    history: list[dict[str, Any]] = []
    run: Any = None
    exit_code: int | None = None
    version = ""
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            history.append(_history_row(rec.history))
        elif kind == "run":
            run = rec.run
            config.apply(rec.run.config)
            summary.apply(rec.run.summary)
        elif kind == "config":
            config.apply(rec.config)
        elif kind == "summary":
            summary.apply(rec.summary)
        elif kind == "exit":
            exit_code = int(rec.exit.exit_code)
        elif kind == "header":
            version = rec.header.version_info.producer
    if run is None:
        raise WandbFileError(f"{path}: no run record (not a complete wandb run log)")
    config_dict, summary_dict = config.result(), summary.result()
    for internal in ("_wandb",):
        config_dict.pop(internal, None)
        summary_dict.pop(internal, None)
    start = run.start_time.seconds + run.start_time.nanos * 1e-9
    return OfflineRun(
        path=path,
        run_id=run.run_id,
        name=run.display_name,
        group=run.run_group,
        project=run.project,
        job_type=run.job_type,
        tags=tuple(run.tags),
        start_time=start,
        config=config_dict,
        history=history,
        summary=summary_dict,
        exit_code=exit_code,
        truncated=truncated,
        wandb_version=version.split("+")[0],
    )


def find_run_files(root: str | Path) -> list[Path]:
    """Every ``run-*.wandb`` file under ``root`` (any depth), without following symlinks (wandb's
    ``latest-run`` link would otherwise list a segment twice), sorted by path."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder of runs: {root}")
    found = []
    for folder, dirs, files in os.walk(root):  # followlinks=False: symlinked folders are skipped
        dirs.sort()
        for name in files:
            path = Path(folder) / name
            if fnmatch.fnmatch(name, "run-*.wandb") and not path.is_symlink():
                found.append(path)
    return sorted(found)


def merge_history(segments: Sequence[OfflineRun], step_key: str) -> list[dict[str, Any]]:
    """History of a resumed run: its segments' rows in start-time order, where for every
    ``(step, key)`` the value logged last wins. Rows without ``step_key`` are dropped.

    :returns: one dict per distinct step, sorted by step.
    """
    merged: dict[Any, dict[str, Any]] = {}
    for seg in sorted(segments, key=lambda s: (s.start_time, str(s.path))):
        for row in seg.history:
            step = row.get(step_key)
            if step is None:
                continue
            merged.setdefault(step, {}).update(row)
    return [merged[s] for s in sorted(merged)]


def config_get(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``config[key]`` unwrapping W&B's legacy ``{"value": ...}`` form when present."""
    value = config.get(key, default)
    if isinstance(value, dict) and set(value) == {"value"}:
        return value["value"]
    return value
