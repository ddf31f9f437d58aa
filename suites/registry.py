"""The method registry: method name -> ``"module:Class"``, imported only when a run needs it.

Nothing here imports a method's module at import time, so running MB-MPO never imports SB3.
Each method's default config is the flat mapping in ``suites/hyperparams/<method>.yaml`` (a missing
file means an empty default config); manifests override it key by key.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from suites.yaml_io import load_yaml

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
"""Where the per-method default configs live."""

_METHODS: dict[str, str] = {
    "trpo": "baselines.sb3:TRPOMethod",
    "ppo": "baselines.sb3:PPOMethod",
    "ddpg": "baselines.sb3:DDPGMethod",
    "mbmpo": "mbmpo.algo:MBMPO",
    "me-trpo": "baselines.metrpo:METRPO",
    "mb-mpc": "baselines.mbmpc:MBMPC",
}


def list_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return sorted(_METHODS)


def register_method(name: str, target: str) -> None:
    """Register ``name`` -> ``target`` (``"module:Class"``), e.g. for a plugin or a test method.

    The target is resolved by import path, so worker processes can load it as long as its module
    is importable there (on ``PYTHONPATH``).

    :raises ValueError: if ``name`` is taken by a different target or ``target`` is malformed.
    """
    _check_target(target)
    if _METHODS.get(name, target) != target:
        raise ValueError(f"method {name!r} is already registered as {_METHODS[name]!r}")
    _METHODS[name] = target


def method_target(name: str) -> str:
    """The ``"module:Class"`` import path of method ``name``.

    :raises KeyError: listing the valid names when ``name`` is unknown.
    """
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(
            f"unknown method {name!r}; valid methods: {', '.join(list_methods())}"
        ) from None


def import_target(target: str) -> type:
    """Import ``"module:Class"`` and return the class."""
    module_name, attr = _check_target(target)
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)  # type: ignore[no-any-return]
    except AttributeError:
        raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from None


def load_method(name: str) -> type:
    """The method class registered as ``name`` (imports its module now)."""
    return import_target(method_target(name))


def default_config(name: str, hyperparams_dir: Path | None = None) -> dict[str, Any]:
    """Method ``name``'s default config from ``<hyperparams_dir>/<name>.yaml`` ({} if absent).

    :raises KeyError: for an unknown method.
    :raises ValueError: naming the file when it is not a mapping with string keys (values may be
        any YAML value, e.g. a list of hidden sizes).
    """
    method_target(name)  # validates the name
    path = (hyperparams_dir or HYPERPARAMS_DIR) / f"{name}.yaml"
    if not path.is_file():
        return {}
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"{path}: must be a flat mapping of config key -> value")
    return dict(data)


def _check_target(target: str) -> tuple[str, str]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"method target {target!r} must look like 'package.module:ClassName'")
    return module_name, attr
