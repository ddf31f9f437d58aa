"""Fixtures for the suites tests: the RandomMethod test method registered as ``random`` (also
importable by worker processes) and manifest-writing helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from suites import registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suites_testkit import TARGET, TESTKIT_DIR  # noqa: E402


@pytest.fixture
def random_method(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``random`` -> RandomMethod for this test; worker processes find it on PYTHONPATH."""
    monkeypatch.setitem(registry._METHODS, "random", TARGET)
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTKIT_DIR), path) if p))
    return "random"


@pytest.fixture
def write_manifest(tmp_path: Path):
    """``write_manifest(data, name="t") -> Path``: a manifest YAML file under tmp_path."""

    def write(data: dict[str, Any] | str, name: str = "t") -> Path:
        path = tmp_path / "manifests" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write
