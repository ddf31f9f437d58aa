"""The live terminal view of a running suite.

On a terminal it redraws a small block in place: a status line (done / running / failed /
pending) and one line per running run with its env steps (from the ``progress.json`` the run's
tracker rewrites at each log call) and latest evaluation return. Elsewhere (a log file, CI) it
prints one line per event and a status line every ``plain_every_s`` seconds.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from mbmpo.protocols import ENV_STEPS, EVAL_RETURN_MEAN
from suites.manifest import RunSpec
from suites.runner import RunOptions, RunResult
from suites.tracking import PROGRESS_FILE

_CLEAR_BLOCK = "\x1b[{n}F\x1b[J"  # cursor up n lines to column 0, clear to end of screen


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def read_progress(options: RunOptions, spec: RunSpec) -> dict[str, Any]:
    """The run's ``progress.json`` ({} if absent or being replaced)."""
    try:
        return dict(json.loads((options.run_dir(spec) / PROGRESS_FILE).read_text()))
    except (OSError, ValueError):
        return {}


class TerminalProgress:
    """A :class:`suites.executors.Progress` that shows the suite on a terminal."""

    def __init__(
        self,
        suite: str,
        specs: Sequence[RunSpec],
        options: RunOptions,
        stream: TextIO | None = None,
        live: bool | None = None,
        redraw_every_s: float = 1.0,
        plain_every_s: float = 30.0,
    ) -> None:
        """
        :param specs: the runs the executor will start.
        :param live: redraw in place (default: when ``stream`` is a terminal).
        """
        self.suite = suite
        self.options = options
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.redraw_every_s = redraw_every_s
        self.plain_every_s = plain_every_s
        self.total = len(specs)
        self.running: dict[str, tuple[RunSpec, float]] = {}
        self.counts = {"done": 0, "failed": 0, "interrupted": 0}
        self.started_at = time.time()
        self._drawn_lines = 0
        self._last_draw = 0.0

    # -- Progress protocol -------------------------------------------------------------------

    def started(self, spec: RunSpec) -> None:
        self.running[spec.run_id] = (spec, time.time())
        if not self.live:
            self._print(f"[start] {spec.run_id}")
        self._draw()

    def finished(self, spec: RunSpec, result: RunResult) -> None:
        _, t0 = self.running.pop(spec.run_id, (spec, time.time()))
        key = result.status if result.status in self.counts else "done"
        self.counts[key] += 1
        label = {"done": "done", "skipped": "done", "failed": "FAILED"}.get(
            result.status, result.status
        )
        line = f"[{label}] {spec.run_id} ({_duration(time.time() - t0)})"
        if result.status == "done":
            info = read_progress(self.options, spec)
            if info.get(EVAL_RETURN_MEAN) is not None:
                line += f" return {info[EVAL_RETURN_MEAN]:.1f}"
        if result.status == "failed":
            first = result.message.splitlines()[0] if result.message else ""
            line += f": {first}\n    log: {result.run_dir / 'run.log'}"
        self._print(line)
        self._draw()

    def tick(self) -> None:
        now = time.time()
        if self.live:
            if now - self._last_draw >= self.redraw_every_s:
                self._draw()
        elif now - self._last_draw >= self.plain_every_s:
            self._last_draw = now
            self.stream.write(self.status_line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Remove the live block (call before printing the summary)."""
        if self.live and self._drawn_lines:
            self.stream.write(_CLEAR_BLOCK.format(n=self._drawn_lines))
            self.stream.flush()
            self._drawn_lines = 0

    # -- drawing -----------------------------------------------------------------------------

    def status_line(self) -> str:
        """``suite: 2/6 done, 2 running, 0 failed, 2 pending [1:23]``."""
        finished = sum(self.counts.values())
        pending = self.total - finished - len(self.running)
        parts = [f"{self.counts['done']}/{self.total} done", f"{len(self.running)} running"]
        parts.append(f"{self.counts['failed']} failed")
        if self.counts["interrupted"]:
            parts.append(f"{self.counts['interrupted']} interrupted")
        parts.append(f"{pending} pending")
        return f"{self.suite}: {', '.join(parts)} [{_duration(time.time() - self.started_at)}]"

    def run_lines(self) -> list[str]:
        """One line per running run: steps, percentage, latest eval return, elapsed time."""
        lines = []
        width = max((len(r) for r in self.running), default=0)
        for run_id, (spec, t0) in self.running.items():
            info = read_progress(self.options, spec)
            steps = int(info.get(ENV_STEPS, 0))
            total = spec.budget.total_env_steps
            ret = info.get(EVAL_RETURN_MEAN)
            ret_text = (
                f"return {ret:10.1f}" if isinstance(ret, int | float) else "return          -"
            )
            lines.append(
                f"  {run_id:<{width}}  {steps:>9}/{total} steps ({100 * steps / total:5.1f}%)  "
                f"{ret_text}  {_duration(time.time() - t0)}"
            )
        return lines

    def _draw(self) -> None:
        if not self.live:
            return
        self.close()
        block = [self.status_line(), *self.run_lines()]
        self.stream.write("\n".join(block) + "\n")
        self.stream.flush()
        self._drawn_lines = len(block)
        self._last_draw = time.time()

    def _print(self, line: str) -> None:
        """A permanent line (above the live block)."""
        self.close()
        self.stream.write(line + "\n")
        self.stream.flush()
