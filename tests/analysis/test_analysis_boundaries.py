"""``analysis`` reads logs only: it imports neither ``suites``, ``mbmpo`` nor ``baselines``."""

from __future__ import annotations

import ast
from pathlib import Path

import analysis

FORBIDDEN = {"suites", "mbmpo", "baselines"}


def test_analysis_imports_no_method_or_suite_code() -> None:
    root = Path(analysis.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert len(list(root.glob("*.py"))) >= 7
    assert offenders == []
