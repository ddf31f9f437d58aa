"""The offline run-file reader against files written by the real pinned wandb."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import wandb
from analysis_fixtures import (
    N_EVALS,
    OFFSET,
    RESUMED,
    SUITE,
    Runs,
    steps_for,
    value,
    wandb_id,
)

from analysis.wandb_offline import (
    BLOCK_LEN,
    FILE_HEADER_LEN,
    WandbFileError,
    _decode_json,
    find_run_files,
    merge_history,
    read_records,
    read_run,
)


def _files(runs: Runs, run_id: str, suite: str = SUITE) -> list[Path]:
    return find_run_files(runs.root / suite / run_id)


def test_reads_config_identity_and_every_history_row(wandb_runs: Runs) -> None:
    (path,) = _files(wandb_runs, "hopper__ppo__s1")
    run = read_run(path)
    assert run.run_id == wandb_id(SUITE, "hopper__ppo__s1")
    assert run.group == SUITE
    assert run.project == "mbmpo-suite"
    assert run.job_type == "ppo"
    assert run.tags == ("hopper", "ppo")
    assert run.name.startswith("hopper__ppo__1__")
    assert run.exit_code == 0 and not run.truncated
    assert run.wandb_version == wandb.__version__
    assert run.config["env"] == "hopper" and run.config["seed"] == 1
    assert run.config["scale"] == 1.0
    assert run.config["budget"] == {
        "total_env_steps": 60000,
        "eval_every": 5000,
        "eval_episodes": 5,
    }
    assert run.config["method_config"] == {"inner_lr": 0.001, "hidden_sizes": [32, 32]}
    assert run.config["versions"]["wandb"] == wandb.__version__
    assert "_wandb" not in run.config
    steps = steps_for(1)
    assert [row["env_steps"] for row in run.history] == steps
    for k, row in enumerate(run.history):
        assert row["_step"] == k
        assert row["eval/return_mean"] == pytest.approx(value("hopper", "ppo", 1, steps[k]))
        assert row["eval/return_std"] == 2.0
        assert row["time/wall_s"] == pytest.approx(steps[k] / 100.0)
    assert run.summary["final_return"] == pytest.approx(value("hopper", "ppo", 1, steps[-1]))
    assert run.summary["env_steps"] == steps[-1]


def test_resumed_run_has_two_segments_merged_latest_wins(wandb_runs: Runs) -> None:
    env, method, seed = RESUMED
    files = _files(wandb_runs, f"{env}__{method}__s{seed}")
    assert len(files) == 2, files  # two offline-run folders, same wandb id
    segments = [read_run(f) for f in files]
    assert len({s.run_id for s in segments}) == 1
    first, second = sorted(segments, key=lambda s: s.start_time)
    assert first.exit_code == 1 and second.exit_code == 0
    # the first segment logged stale values at steps the second one logged again
    overlap = {r["env_steps"] for r in first.history} & {r["env_steps"] for r in second.history}
    assert len(overlap) == 3
    merged = merge_history(segments, "env_steps")
    steps = steps_for(seed)
    assert [r["env_steps"] for r in merged] == steps
    for row in merged:
        assert row["eval/return_mean"] == pytest.approx(value(env, method, seed, row["env_steps"]))


def test_latest_run_symlink_is_not_counted_twice(wandb_runs: Runs) -> None:
    run_dir = wandb_runs.root / SUITE / "hopper__mbmpo__s0"
    assert (run_dir / "wandb" / "latest-run").is_symlink()
    assert len(find_run_files(run_dir)) == 1


def test_records_span_blocks_and_crc_is_plain_crc32(tmp_path: Path) -> None:
    """A config larger than two 32 KiB blocks is split FIRST/MIDDLE/LAST and read back whole."""
    blob = "".join(chr(ord("a") + i % 26) for i in range(3 * BLOCK_LEN))
    run = wandb.init(mode="offline", dir=str(tmp_path), id="bigcfg", config={"blob": blob})
    for i in range(3):
        wandb.log({"x": i, "env_steps": i})
    run.finish()
    wandb.teardown()  # flushes the file's last block (finish() may return before it is written)
    (path,) = find_run_files(tmp_path)
    data = path.read_bytes()
    assert len(data) > 3 * BLOCK_LEN
    # independent check of the first chunk's checksum convention
    crc, length, kind = struct.unpack_from("<IHB", data, FILE_HEADER_LEN)
    payload = data[FILE_HEADER_LEN + 7 : FILE_HEADER_LEN + 7 + length]
    assert crc == zlib.crc32(bytes([kind]) + payload)
    got = read_run(path)
    assert got.config["blob"] == blob
    assert [r["x"] for r in got.history] == [0, 1, 2]


def test_truncated_file_reads_complete_records_only(wandb_runs: Runs, tmp_path: Path) -> None:
    (path,) = _files(wandb_runs, "hopper__ppo__s0")
    full = read_run(path)
    data = path.read_bytes()
    seen_lengths = set()
    for cut in (len(data) - 3, len(data) - 120, len(data) // 2, FILE_HEADER_LEN + 20):
        part = tmp_path / f"cut{cut}" / path.name
        part.parent.mkdir()
        part.write_bytes(data[:cut])
        if cut == FILE_HEADER_LEN + 20:  # not even the run record survived
            with pytest.raises(WandbFileError, match="no run record"):
                read_run(part)
            continue
        got = read_run(part)
        assert got.truncated
        assert got.history == full.history[: len(got.history)]
        seen_lengths.add(len(got.history))
    assert min(seen_lengths) < len(full.history)


def test_corrupt_crc_names_the_file_and_offset(wandb_runs: Runs, tmp_path: Path) -> None:
    (path,) = _files(wandb_runs, "hopper__ppo__s0")
    bad = tmp_path / "bad" / path.name
    bad.parent.mkdir()
    shutil.copy(path, bad)
    data = bytearray(bad.read_bytes())
    at = data.index(b"eval/return_mean") + 2
    data[at] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(WandbFileError, match="CRC mismatch at byte") as err:
        read_records(bad)
    assert str(bad) in str(err.value)


def test_not_a_wandb_file(tmp_path: Path) -> None:
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"PK\x03\x04 definitely not wandb")
    with pytest.raises(WandbFileError, match="not a wandb run file") as err:
        read_run(bad)
    assert str(bad) in str(err.value)


def test_offsets_of_seeds_are_what_was_logged(wandb_runs: Runs) -> None:
    for seed, offset in OFFSET.items():
        (path,) = _files(wandb_runs, f"hopper__mbmpo__s{seed}")
        first = read_run(path).history[0]
        assert first["env_steps"] == 0
        assert first["eval/return_mean"] == pytest.approx(offset)
        assert len(read_run(path).history) == N_EVALS + 1


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "-3",
        "0",
        "0.5",
        "-0.25",
        "1e5",
        "1.5E-3",
        '"x"',
        "[1, 2]",
        '{"a": 1}',
        "true",
        "false",
        "null",
    ],
)
def test_fast_number_decoding_matches_json(text: str) -> None:
    got = _decode_json(text)
    want = json.loads(text)
    assert got == want and type(got) is type(want)


def test_non_finite_values_decode() -> None:
    assert math.isnan(_decode_json("NaN"))
    assert _decode_json("Infinity") == math.inf and _decode_json("-Infinity") == -math.inf


def test_torn_last_chunk_is_truncation_not_corruption(wandb_runs: Runs, tmp_path: Path) -> None:
    """A killed writer can leave the last chunk's header with zeroed data: read up to it."""
    (path,) = _files(wandb_runs, "hopper__ppo__s1")
    full = read_run(path)
    data = bytearray(path.read_bytes())
    # find the start of the last chunk by walking the chunk headers of the (single-block) file
    assert len(data) < BLOCK_LEN
    pos, last = FILE_HEADER_LEN, FILE_HEADER_LEN
    while pos + 7 <= len(data):
        _, length, _ = struct.unpack_from("<IHB", data, pos)
        last, pos = pos, pos + 7 + length
    data[last + 7 + 1 :] = bytes(len(data) - last - 8)  # zero the tail of its payload
    torn = tmp_path / "torn" / path.name
    torn.parent.mkdir()
    torn.write_bytes(bytes(data))
    got = read_run(torn)
    assert got.truncated
    assert got.history == full.history[: len(got.history)]


def _flatten(row: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, val in row.items():
        if isinstance(val, dict) and val:
            out.update(_flatten(val, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = val
    return out


def test_agrees_with_wandbs_own_inspector(wandb_runs: Runs) -> None:
    """Cross-check against ``wandb leet inspect --json`` (wandb 0.31's own reader of the file)."""
    env, method, seed = RESUMED
    files = [
        *_files(wandb_runs, "hopper__mbmpo__s2"),
        *_files(wandb_runs, f"{env}__{method}__s{seed}"),
    ]
    cli = Path(sys.executable).parent / "wandb"
    for path in files:
        proc = subprocess.run(
            [str(cli), "leet", "inspect", "--json", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        theirs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        records, truncated = read_records(path)
        assert not truncated and len(records) == len(theirs)
        assert [r.WhichOneof("record_type") for r in records] == [t["type"] for t in theirs]
        ours = read_run(path)
        their_rows = [_flatten(t["history"]["item"]) for t in theirs if t["type"] == "history"]
        assert len(their_rows) == len(ours.history) > 0
        for mine, their in zip(ours.history, their_rows, strict=True):
            assert mine.keys() == their.keys()
            for key, val in mine.items():
                assert val == pytest.approx(their[key], rel=1e-12), (path, key)
        (run_rec,) = [t["run"] for t in theirs if t["type"] == "run"]
        their_config = {k: v for k, v in run_rec["config"]["update"].items() if k != "_wandb"}
        assert ours.config == their_config
        assert ours.tags == tuple(run_rec["tags"]) and ours.group == run_rec["run_group"]
