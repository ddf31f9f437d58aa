"""Quiet one known MuJoCo deprecation message, keep every other MuJoCo warning.

gymnasium's ``half_cheetah.xml`` uses the compiler attribute ``settotalmass``, which MuJoCo 4
compiles correctly but reports as deprecated, once per env built: 20+ identical lines per MB-MPO
iteration in a run's log. :func:`install_warning_filter` sets MuJoCo's user warning handler to
drop that one message and to pass every other warning on as MuJoCo itself would (printed, and
appended to ``MUJOCO_LOG.TXT`` in the working directory). It leaves a handler someone else
installed alone.
"""

from __future__ import annotations

import sys
import time

import mujoco

_DROPPED = ("compiler attribute 'settotalmass' is deprecated",)


def forward_warning(message: str) -> None:
    """MuJoCo's own behaviour for ``message``, unless it is one of the known deprecations."""
    if any(known in message for known in _DROPPED):
        return
    print(f"WARNING: {message}", file=sys.stderr, flush=True)
    try:
        with open("MUJOCO_LOG.TXT", "a") as log:
            log.write(f"{time.ctime()}\nWARNING: {message}\n\n")
    except OSError:
        pass


def install_warning_filter() -> None:
    """Install :func:`forward_warning` as MuJoCo's warning handler, unless a handler (this one or
    someone else's) is already set."""
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(forward_warning)
