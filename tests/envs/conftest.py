"""Shared fixtures for the env tests, and a terminal summary of the reward/termination gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

GAPS: dict[str, dict[str, float]] = {}
"""env name -> {quantity: value}, filled by the reward tests, printed after the run."""


@pytest.fixture(autouse=True)
def _run_in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MuJoCo appends warnings (HalfCheetah's XML) to ./MUJOCO_LOG.TXT: keep it out of the tree."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def gap_report() -> dict[str, dict[str, float]]:
    """Where tests record the largest model-vs-simulator gaps per env."""
    return GAPS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not GAPS:
        return
    terminalreporter.section("env reward gaps: model reward_fn vs simulator (real transitions)")
    for name in sorted(GAPS):
        row = GAPS[name]
        cells = "  ".join(f"{k}={v:.3g}" for k, v in row.items())
        terminalreporter.write_line(f"{name:18s} {cells}")
