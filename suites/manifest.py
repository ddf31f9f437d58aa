"""Suite manifests: a YAML grid of methods x envs x seeds with a budget, validated on load and
expanded into :class:`RunSpec` s with stable ids.

The format (``suites/manifests/<name>.yaml``)::

    name: smoke                    # optional, defaults to the file name; results/<name>/, W&B group
    description: one line
    methods: [trpo, ppo, ddpg]     # names from suites.registry
    envs: [pendulum]               # names from mbmpo.envs.list_envs()
    seeds: 2                       # n -> seeds 0..n-1, or an explicit list [0, 5, 7]
    budget:                        # all in real env steps
      total_env_steps: 10000
      eval_every: 2000
      eval_episodes: 5             # optional (default 5)
    resources: {cpus: 1, gpus: 0}  # optional, per run (default 1 CPU, 0 GPUs; gpus may be a
                                   # fraction; a run with gpus > 0 trains on cuda)
    method_overrides:              # optional, per method
      ddpg: {config: {learning_starts: 200}, budget: {total_env_steps: 3000}, resources: {cpus: 1}}
    env_overrides:                 # optional, per env (no config: configs belong to methods)
      pendulum: {budget: {eval_every: 1000}}
    run_overrides:                 # optional, per (env, method), written "env/method"
      pendulum/ddpg: {config: {batch_size: 64}}
    variants:                      # optional: extra method entries that run a registered
      ppo-big:                     # method with other settings; list them in `methods`
        method: ppo                # the registered method (its class and defaults file)
        label: large batch         # optional: W&B config `variant` (figure legends); default
        config: {n_steps: 4096}    # the entry's name. `config` overrides the defaults file

A variant runs under its own name everywhere (run id ``pendulum__ppo-big__s0``, W&B config
``method``, job type, tags), with ``base_method`` (the registered method) and ``variant`` (its
label) added to the W&B config; ``method_overrides`` and ``run_overrides`` address it by name.

Precedence, later wins: suite < env_overrides < method_overrides < run_overrides for the budget
and resources; the method's ``suites/hyperparams/<method>.yaml`` < a variant's ``config`` <
method_overrides < run_overrides for the method config (key by key).

Every problem in a manifest is collected into ONE :class:`ManifestError` naming the file, the key
and the allowed values, raised before anything runs or is written.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mbmpo.envs import list_envs
from mbmpo.protocols import Budget
from suites import registry
from suites.yaml_io import load_yaml

MANIFESTS_DIR = Path(__file__).resolve().parent / "manifests"
"""Where named manifests live."""

_TOP_KEYS = (
    "name",
    "description",
    "methods",
    "envs",
    "seeds",
    "budget",
    "resources",
    "method_overrides",
    "env_overrides",
    "run_overrides",
    "variants",
)
_REQUIRED_TOP = ("methods", "envs", "seeds", "budget")
_BUDGET_KEYS = ("total_env_steps", "eval_every", "eval_episodes")
_REQUIRED_BUDGET = ("total_env_steps", "eval_every")
_RESOURCE_KEYS = ("cpus", "gpus")
_VARIANT_KEYS = ("method", "label", "config")
_METHOD_OVERRIDE_KEYS = ("config", "budget", "resources")
_ENV_OVERRIDE_KEYS = ("budget", "resources")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_EVAL_EPISODES: int = Budget(1, 1).eval_episodes
DEFAULT_CPUS = 1


class ManifestError(ValueError):
    """A manifest is invalid; the message lists every problem with its file and key."""


@dataclass(frozen=True)
class Override:
    """Settings that replace the suite's for some runs (an absent key changes nothing)."""

    config: Mapping[str, Any] = field(default_factory=dict)
    """Method config keys merged over the defaults (not allowed in ``env_overrides``)."""
    budget: Mapping[str, int] = field(default_factory=dict)
    """Budget keys (``total_env_steps``, ``eval_every``, ``eval_episodes``) to replace."""
    cpus: int | None = None
    """CPU threads per run, or ``None`` to keep the suite's."""
    gpus: float | None = None
    """GPUs per run (may be fractional), or ``None`` to keep the suite's."""


@dataclass(frozen=True)
class Variant:
    """A named method entry that runs a registered method with other settings."""

    method: str
    """The registered method it runs."""
    label: str
    """Its label in the W&B config (``variant``), e.g. for figure legends."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """Method config keys over the method's defaults file (under method_overrides)."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite: everything a worker needs to run it, nothing about where results go."""

    suite: str
    """Suite name (results folder ``<root>/<suite>/`` and W&B group)."""
    run_id: str
    """``<env>__<method>__s<seed>`` plus ``__x<scale>`` when scaled; stable across re-runs."""
    env: str
    """Env registry name."""
    method: str
    """Method registry name."""
    target: str
    """The method class as ``"module:Class"`` (resolved from the registry at expansion)."""
    seed: int
    """Random seed."""
    budget: Budget
    """Real env steps to train for and the evaluation schedule (already scaled)."""
    scale: float
    """Budget multiplier; 1.0 is the manifest's (paper) budget."""
    method_config: Mapping[str, Any]
    """Fully resolved method config (defaults file + overrides)."""
    cpus: int
    """CPU threads the run may use."""
    manifest: str
    """Path of the manifest file this run came from."""
    gpus: float = 0.0
    """GPUs the run asks for (an executor's scheduling hint; a run with gpus > 0 trains on cuda)."""
    base_method: str | None = None
    """For a variant entry: the registered method it runs; ``None`` when ``method`` is one."""
    variant: str | None = None
    """For a variant entry: its label (W&B config ``variant``); ``None`` otherwise."""

    def __post_init__(self) -> None:
        if self.cpus < 1:
            raise ValueError(f"RunSpec.cpus must be >= 1, got {self.cpus}")
        if self.gpus < 0:
            raise ValueError(f"RunSpec.gpus must be >= 0, got {self.gpus}")
        if not self.scale > 0:
            raise ValueError(f"RunSpec.scale must be > 0, got {self.scale}")

    @property
    def wandb_id(self) -> str:
        """A stable W&B run id from (suite, run_id), so a resumed run continues the same W&B run."""
        return wandb_run_id(self.suite, self.run_id)

    @property
    def scaled(self) -> bool:
        """Whether the budget differs from the manifest's."""
        return self.scale != 1.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (inverse of :meth:`from_dict`)."""
        return {
            "suite": self.suite,
            "run_id": self.run_id,
            "env": self.env,
            "method": self.method,
            "target": self.target,
            "seed": self.seed,
            "budget": {
                "total_env_steps": self.budget.total_env_steps,
                "eval_every": self.budget.eval_every,
                "eval_episodes": self.budget.eval_episodes,
            },
            "scale": self.scale,
            "method_config": dict(self.method_config),
            "cpus": self.cpus,
            "manifest": self.manifest,
            "gpus": self.gpus,
            "base_method": self.base_method,
            "variant": self.variant,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        """Rebuild a spec written by :meth:`to_dict`."""
        values = dict(data)
        values["budget"] = Budget(**values["budget"])
        values["method_config"] = dict(values["method_config"])
        return cls(**values)


def wandb_run_id(suite: str, run_id: str) -> str:
    """A stable 24-hex-character W&B run id for ``run_id`` of ``suite``."""
    return hashlib.sha1(f"{suite}/{run_id}".encode()).hexdigest()[:24]


def format_scale(scale: float) -> str:
    """How a scale appears in run ids: ``0.05`` -> ``"0.05"``, ``2.0`` -> ``"2"``."""
    return format(scale, "g")


def make_run_id(env: str, method: str, seed: int, scale: float = 1.0) -> str:
    """``<env>__<method>__s<seed>``, plus ``__x<scale>`` when ``scale != 1``."""
    run_id = f"{env}__{method}__s{seed}"
    if scale != 1.0:
        run_id += f"__x{format_scale(scale)}"
    return run_id


@dataclass(frozen=True)
class Manifest:
    """A validated suite manifest. Build it with :func:`load_manifest`."""

    name: str
    """Suite name."""
    description: str
    """One line shown in listings."""
    methods: tuple[str, ...]
    """Method registry names."""
    envs: tuple[str, ...]
    """Env registry names."""
    seeds: tuple[int, ...]
    """Seeds, in run order."""
    budget: Budget
    """The suite's budget (before overrides and scaling)."""
    cpus: int
    """CPU threads per run (before overrides)."""
    path: Path
    """The manifest file."""
    method_overrides: Mapping[str, Override] = field(default_factory=dict)
    """Per-method overrides."""
    env_overrides: Mapping[str, Override] = field(default_factory=dict)
    """Per-env overrides (budget, resources)."""
    run_overrides: Mapping[tuple[str, str], Override] = field(default_factory=dict)
    """Per-(env, method) overrides."""
    gpus: float = 0.0
    """GPUs per run (before overrides)."""
    variants: Mapping[str, Variant] = field(default_factory=dict)
    """Variant entries of ``methods``, by name."""

    def base_method(self, name: str) -> str:
        """The registered method behind the ``methods`` entry ``name``."""
        return self.variants[name].method if name in self.variants else name

    def expand(self, scale: float = 1.0, hyperparams_dir: Path | None = None) -> list[RunSpec]:
        """All runs of the grid, seed-major (one seed of every env x method first).

        :param scale: multiplies ``total_env_steps`` and ``eval_every`` (rounded, at least 1);
            runs with ``scale != 1`` get a ``__x<scale>`` run id suffix.
        :raises ValueError: for a non-positive scale, or a defaults file that is not a mapping.
        """
        if not (isinstance(scale, int | float) and scale > 0):
            raise ValueError(f"scale must be a number > 0, got {scale!r}")
        scale = float(scale)
        defaults = {
            m: registry.default_config(self.base_method(m), hyperparams_dir) for m in self.methods
        }
        specs = []
        for seed in self.seeds:
            for env in self.envs:
                for method in self.methods:
                    layers = [
                        self.env_overrides.get(env, Override()),
                        self.method_overrides.get(method, Override()),
                        self.run_overrides.get((env, method), Override()),
                    ]
                    budget_values = {
                        "total_env_steps": self.budget.total_env_steps,
                        "eval_every": self.budget.eval_every,
                        "eval_episodes": self.budget.eval_episodes,
                    }
                    config = dict(defaults[method])
                    variant = self.variants.get(method)
                    if variant is not None:
                        config.update(variant.config)
                    cpus, gpus = self.cpus, self.gpus
                    for layer in layers:
                        budget_values.update(layer.budget)
                        config.update(layer.config)
                        if layer.cpus is not None:
                            cpus = layer.cpus
                        if layer.gpus is not None:
                            gpus = layer.gpus
                    budget = Budget(
                        total_env_steps=_scaled(budget_values["total_env_steps"], scale),
                        eval_every=_scaled(budget_values["eval_every"], scale),
                        eval_episodes=budget_values["eval_episodes"],
                    )
                    specs.append(
                        RunSpec(
                            suite=self.name,
                            run_id=make_run_id(env, method, seed, scale),
                            env=env,
                            method=method,
                            target=registry.method_target(self.base_method(method)),
                            seed=seed,
                            budget=budget,
                            scale=scale,
                            method_config=config,
                            cpus=cpus,
                            manifest=str(self.path),
                            gpus=gpus,
                            base_method=variant.method if variant else None,
                            variant=variant.label if variant else None,
                        )
                    )
        return specs


def _scaled(steps: int, scale: float) -> int:
    return max(1, round(steps * scale))


def check_method_configs(specs: list[RunSpec]) -> None:
    """Build each run's method config early, for methods whose class declares a ``config_class``
    dataclass (built with its ``from_mapping(values, where=...)`` classmethod if it has one), so a
    bad key or value fails before anything runs (imports those method modules).

    :raises ManifestError: naming the manifest, the method and the problem.
    """
    from mbmpo.config_utils import dataclass_from_mapping

    problems: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        key = (spec.method, repr(sorted(spec.method_config.items())))
        if key in seen:
            continue
        seen.add(key)
        try:
            method_cls = registry.import_target(spec.target)
        except ImportError as exc:
            message = f"  - methods: cannot import {spec.method} ({spec.target}): {exc}"
            if message not in problems.setdefault(spec.manifest, []):
                problems[spec.manifest].append(message)
            continue
        config_class = getattr(method_cls, "config_class", None)
        if not isinstance(config_class, type) or not dataclasses.is_dataclass(config_class):
            continue
        where = f"{spec.method} config"
        try:
            from_mapping = getattr(config_class, "from_mapping", None)
            if callable(from_mapping):
                from_mapping(spec.method_config, where=where)
            else:
                dataclass_from_mapping(config_class, spec.method_config, where=where)
        except (TypeError, ValueError) as exc:
            where = (
                f"config of {spec.run_id} (suites/hyperparams/{spec.base_method or spec.method}.yaml + "
                f"method_overrides.{spec.method}.config + run_overrides.{spec.env}/{spec.method}.config)"
            )
            message = f"  - {where}: {exc}"
            if message not in problems.setdefault(spec.manifest, []):
                problems[spec.manifest].append(message)
    if problems:
        raise ManifestError(
            "\n".join(
                f"invalid manifest {path}:\n" + "\n".join(lines) for path, lines in problems.items()
            )
        )


def filter_runs(specs: list[RunSpec], pattern: str | None) -> list[RunSpec]:
    """The specs whose run id matches ``pattern`` (shell glob; comma-separated alternatives).

    A pattern without glob characters matches as a substring, so ``--only ddpg`` selects the DDPG
    runs.
    """
    if not pattern:
        return list(specs)
    alternatives = [p.strip() for p in pattern.split(",") if p.strip()]
    globs = [p if any(c in p for c in "*?[") else f"*{p}*" for p in alternatives]
    return [s for s in specs if any(fnmatch.fnmatchcase(s.run_id, g) for g in globs)]


def available_manifests() -> list[str]:
    """Names of the manifests in ``suites/manifests/``."""
    return sorted(p.stem for p in MANIFESTS_DIR.glob("*.yaml"))


def resolve_manifest_path(name_or_path: str | Path) -> Path:
    """A manifest file from a path, or from a name in ``suites/manifests/``.

    :raises ManifestError: listing the available names when neither exists.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path.resolve()
    named = MANIFESTS_DIR / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    raise ManifestError(
        f"no manifest {str(name_or_path)!r}: not a file, and not a name in {MANIFESTS_DIR}; "
        f"available: {', '.join(available_manifests()) or '(none)'}"
    )


def load_manifest(name_or_path: str | Path) -> Manifest:
    """Load and validate a manifest (by name or path).

    :raises ManifestError: listing every problem, each with the file, key and allowed values.
    """
    path = resolve_manifest_path(name_or_path)
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid manifest {path}: not valid YAML: {exc}") from None
    return parse_manifest(data, path)


class _Problems:
    """Collects validation problems so the user sees all of them at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {item}" for item in self.items)
            raise ManifestError(f"invalid manifest {self.path}:\n{lines}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_keys(
    problems: _Problems, where: str, data: Mapping[str, Any], allowed: tuple[str, ...]
) -> None:
    for key in data:
        if key not in allowed:
            label = f"{where}.{key}" if where else str(key)
            problems.add(label, f"unknown key; allowed keys: {', '.join(allowed)}")


def _mapping(problems: _Problems, where: str, value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        problems.add(where, f"must be a mapping, got {_type_name(value)} {value!r}")
        return None
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        problems.add(where, f"keys must be strings, got {bad!r}")
        return None
    return value


def _names(problems: _Problems, key: str, value: Any, allowed: list[str], kind: str) -> list[str]:
    """A non-empty list of known, unique names (a single string is accepted as a list of one)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.add(key, f"must be a list of {kind} names, got {_type_name(value)} {value!r}")
        return []
    if not value:
        problems.add(key, f"empty grid: list at least one {kind}; allowed: {', '.join(allowed)}")
        return []
    names: list[str] = []
    for i, name in enumerate(value):
        if not isinstance(name, str):
            problems.add(f"{key}[{i}]", f"must be a {kind} name (string), got {name!r}")
        elif name not in allowed:
            problems.add(f"{key}[{i}]", f"unknown {kind} {name!r}; allowed: {', '.join(allowed)}")
        elif name in names:
            problems.add(f"{key}[{i}]", f"{kind} {name!r} is listed twice")
        else:
            names.append(name)
    return names


def _seeds(problems: _Problems, value: Any) -> list[int]:
    if _is_int(value):
        if value < 1:
            problems.add(
                "seeds", f"empty grid: a seed count must be >= 1, got {value}; or list the seeds"
            )
            return []
        return list(range(value))
    if not isinstance(value, list):
        problems.add(
            "seeds",
            f"must be a count (int >= 1) or a list of ints >= 0, got {_type_name(value)} {value!r}",
        )
        return []
    if not value:
        problems.add("seeds", "empty grid: list at least one seed (int >= 0), or give a count")
        return []
    seeds: list[int] = []
    for i, seed in enumerate(value):
        if not _is_int(seed) or seed < 0:
            problems.add(f"seeds[{i}]", f"must be an int >= 0, got {seed!r}")
        elif seed in seeds:
            problems.add(f"seeds[{i}]", f"seed {seed} is listed twice")
        else:
            seeds.append(seed)
    return seeds


def _budget(problems: _Problems, where: str, value: Any, required: bool) -> dict[str, int]:
    data = _mapping(problems, where, value)
    if data is None:
        return {}
    _check_keys(problems, where, data, _BUDGET_KEYS)
    out: dict[str, int] = {}
    for key in _BUDGET_KEYS:
        if key not in data:
            if required and key in _REQUIRED_BUDGET:
                problems.add(f"{where}.{key}", "missing (a positive int of real env steps)")
            continue
        v = data[key]
        if not _is_int(v) or v <= 0:
            problems.add(f"{where}.{key}", f"must be a positive int, got {v!r}")
        else:
            out[key] = v
    return out


def _resources(problems: _Problems, where: str, value: Any) -> tuple[int | None, float | None]:
    """``(cpus, gpus)`` of a ``resources`` mapping (``None`` where absent or invalid)."""
    data = _mapping(problems, where, value)
    if data is None:
        return None, None
    _check_keys(problems, where, data, _RESOURCE_KEYS)
    cpus, gpus = data.get("cpus"), data.get("gpus")
    if cpus is not None and (not _is_int(cpus) or cpus < 1):
        problems.add(f"{where}.cpus", f"must be an int >= 1, got {cpus!r}")
        cpus = None
    if gpus is not None and (
        isinstance(gpus, bool) or not isinstance(gpus, int | float) or not gpus >= 0
    ):
        problems.add(f"{where}.gpus", f"must be a number >= 0 (fractions allowed), got {gpus!r}")
        gpus = None
    return (
        int(cpus) if cpus is not None else None,
        float(gpus) if gpus is not None else None,
    )


def _override(
    problems: _Problems, where: str, value: Any, allowed_keys: tuple[str, ...]
) -> Override:
    data = _mapping(problems, where, value)
    if data is None:
        return Override()
    _check_keys(problems, where, data, allowed_keys)
    config: dict[str, Any] = {}
    if "config" in data and "config" in allowed_keys:
        config = _mapping(problems, f"{where}.config", data["config"]) or {}
    budget = _budget(problems, f"{where}.budget", data["budget"], False) if "budget" in data else {}
    cpus, gpus = (
        _resources(problems, f"{where}.resources", data["resources"])
        if "resources" in data
        else (None, None)
    )
    return Override(config=dict(config), budget=budget, cpus=cpus, gpus=gpus)


def _variants(problems: _Problems, value: Any, registered: list[str]) -> dict[str, Variant]:
    """The ``variants`` mapping: name -> {method, label?, config?}."""
    out: dict[str, Variant] = {}
    for name, entry in (_mapping(problems, "variants", value) or {}).items():
        where = f"variants.{name}"
        if not _NAME_RE.match(name) or "__" in name:
            problems.add(
                where, "name must be letters, digits, '_', '.', '-' (no '__'), e.g. mbmpo-noadapt"
            )
            continue
        if name in registered:
            problems.add(where, f"{name!r} is a registered method; give the variant another name")
            continue
        data = _mapping(problems, where, entry)
        if data is None:
            continue
        _check_keys(problems, where, data, _VARIANT_KEYS)
        method = data.get("method")
        if method not in registered:
            problems.add(
                f"{where}.method",
                f"must be a registered method, got {method!r}; allowed: {', '.join(registered)}",
            )
            continue
        label = data.get("label", name)
        if not isinstance(label, str) or not label.strip():
            problems.add(f"{where}.label", f"must be a non-empty string, got {label!r}")
            continue
        config = _mapping(problems, f"{where}.config", data.get("config", {})) or {}
        out[name] = Variant(method=method, label=label, config=dict(config))
    return out


def parse_manifest(data: Any, path: Path) -> Manifest:
    """Validate the parsed YAML ``data`` of the manifest at ``path``.

    :raises ManifestError: listing every problem found.
    """
    problems = _Problems(path)
    top = _mapping(problems, "(top level)", data)
    if top is None:
        problems.raise_if_any()
        raise AssertionError("unreachable")
    _check_keys(problems, "", top, _TOP_KEYS)
    for key in _REQUIRED_TOP:
        if key not in top:
            problems.add(key, "missing (required keys: " + ", ".join(_REQUIRED_TOP) + ")")

    name = top.get("name", path.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problems.add("name", f"must be a string of letters, digits, '_', '.', '-', got {name!r}")
    description = top.get("description", "")
    if not isinstance(description, str):
        problems.add("description", f"must be a string, got {_type_name(description)}")

    all_envs = list_envs()
    variants = (
        _variants(problems, top["variants"], registry.list_methods()) if "variants" in top else {}
    )
    all_methods = registry.list_methods() + sorted(variants)
    methods = (
        _names(problems, "methods", top["methods"], all_methods, "method")
        if "methods" in top
        else []
    )
    envs = _names(problems, "envs", top["envs"], all_envs, "env") if "envs" in top else []
    seeds = _seeds(problems, top["seeds"]) if "seeds" in top else []
    budget = _budget(problems, "budget", top["budget"], True) if "budget" in top else {}
    cpus, gpus = (
        _resources(problems, "resources", top["resources"]) if "resources" in top else (None, None)
    )
    for name in sorted(set(variants) - set(methods)):
        problems.add(f"variants.{name}", f"defined but not listed in methods: {', '.join(methods)}")

    method_overrides: dict[str, Override] = {}
    for key, value in (
        _mapping(problems, "method_overrides", top.get("method_overrides", {})) or {}
    ).items():
        where = f"method_overrides.{key}"
        if key not in methods:
            problems.add(
                where, f"method {key!r} is not in this suite's methods: {', '.join(methods)}"
            )
        method_overrides[key] = _override(problems, where, value, _METHOD_OVERRIDE_KEYS)

    env_overrides: dict[str, Override] = {}
    for key, value in (
        _mapping(problems, "env_overrides", top.get("env_overrides", {})) or {}
    ).items():
        where = f"env_overrides.{key}"
        if key not in envs:
            problems.add(where, f"env {key!r} is not in this suite's envs: {', '.join(envs)}")
        env_overrides[key] = _override(problems, where, value, _ENV_OVERRIDE_KEYS)

    run_overrides: dict[tuple[str, str], Override] = {}
    for key, value in (
        _mapping(problems, "run_overrides", top.get("run_overrides", {})) or {}
    ).items():
        where = f"run_overrides.{key}"
        env, sep, method = key.partition("/")
        if not sep:
            problems.add(where, "key must be 'env/method', e.g. 'pendulum/ddpg'")
            continue
        if env not in envs:
            problems.add(where, f"env {env!r} is not in this suite's envs: {', '.join(envs)}")
        if method not in methods:
            problems.add(
                where, f"method {method!r} is not in this suite's methods: {', '.join(methods)}"
            )
        run_overrides[(env, method)] = _override(problems, where, value, _METHOD_OVERRIDE_KEYS)

    problems.raise_if_any()
    return Manifest(
        name=name,
        description=description,
        methods=tuple(methods),
        envs=tuple(envs),
        seeds=tuple(seeds),
        budget=Budget(
            total_env_steps=budget["total_env_steps"],
            eval_every=budget["eval_every"],
            eval_episodes=budget.get("eval_episodes", DEFAULT_EVAL_EPISODES),
        ),
        cpus=cpus if cpus is not None else DEFAULT_CPUS,
        path=path,
        method_overrides=method_overrides,
        env_overrides=env_overrides,
        run_overrides=run_overrides,
        gpus=gpus if gpus is not None else 0.0,
        variants=variants,
    )
