"""Tell apart variants of one method inside a suite (e.g. Figure 5's alpha = 0.001 vs alpha = 0,
both method ``mbmpo``), so that curves and tables never average different variants together.

Runs of the same (suite, env, method, scale) that share a seed are variants. Each is labelled by
its config ``variant`` when present, else by the ``method_config`` entries that differ between
them (``inner_lr=0.001``), else by its run id; its ``method`` becomes ``<method>[<label>]``.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis.load import RunInfo
from analysis.wandb_offline import config_get


def _differing(configs: Sequence[dict[str, Any]]) -> list[str]:
    keys = sorted({k for c in configs for k in c})
    return [
        k
        for k in keys
        if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1
    ]


def variant_methods(infos: Sequence[RunInfo]) -> dict[tuple[str, str], str]:
    """``{(suite, run_id): "<method>[<label>]"}`` for every run that needs telling apart."""
    groups: dict[tuple[str, str, str, float], list[RunInfo]] = defaultdict(list)
    for info in infos:
        groups[info.suite, info.env, info.method, info.scale].append(info)
    out: dict[tuple[str, str], str] = {}
    for (_, _, method, _), runs in groups.items():
        seeds = [r.seed for r in runs]
        if len(seeds) == len(set(seeds)):
            continue
        mcfgs = [config_get(r.config, "method_config", {}) or {} for r in runs]
        mcfgs = [m if isinstance(m, dict) else {} for m in mcfgs]
        keys = _differing(mcfgs)
        for run, mcfg in zip(runs, mcfgs, strict=True):
            variant = config_get(run.config, "variant", None)
            if variant:
                label = str(variant)
            elif keys:
                label = ",".join(f"{k}={json.dumps(mcfg.get(k), default=str)}" for k in keys)
            else:
                label = run.run_id
            out[run.suite, run.run_id] = f"{method}[{label}]"
    return out


def split_variants(df: pd.DataFrame, infos: Sequence[RunInfo]) -> pd.DataFrame:
    """``df`` with ``method`` renamed to ``<method>[<label>]`` for runs that are variants."""
    mapping = variant_methods(infos)
    if not mapping:
        return df
    keys = pd.Series(list(zip(df["suite"], df["run_id"], strict=True)), index=df.index)
    renamed = keys.map(lambda k: mapping.get(k))
    method = df["method"].where(renamed.isna(), renamed)
    return df.assign(method=method.astype("string"))


class MixedVariantsWarning(UserWarning):
    """Several runs with the same seed were aggregated as one method (undeclared variants)."""


def warn_duplicate_seeds(group: pd.DataFrame, what: str) -> None:
    """Warn when ``group`` (tidy rows of one curve) holds several runs with the same seed."""
    runs = group.drop_duplicates(["suite", "run_id"])[["seed", "run_id"]]
    dup = runs[runs["seed"].duplicated(keep=False)]
    if not dup.empty:
        warnings.warn(
            f"{what}: runs {sorted(dup['run_id'].tolist())} share seeds"
            f" {sorted(set(dup['seed'].tolist()))}: variants of one method are averaged together"
            " (use analysis.variants.split_variants, or give runs a config 'variant')",
            MixedVariantsWarning,
            stacklevel=3,
        )
