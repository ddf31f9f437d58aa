"""The paper suites' manifests (Figures 1, 2, 5): they load, validate (method configs included),
expand to the paper's grids with the paper's budgets, match what the analysis figures expect,
dry-run, and scaled runs are tagged. Also the manifest features they rely on: variants and the
gpus resource."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from analysis.figures import FIGURES, VARIANT_ADAPT, VARIANT_NO_ADAPT, canonical_method
from analysis.figures import variant_label as figure_variant
from mbmpo.config import MBMPOConfig
from mbmpo.envs import get_env
from suites.manifest import (
    ManifestError,
    RunSpec,
    check_method_configs,
    load_manifest,
    parse_manifest,
)
from suites.run import main as run_main
from suites.runner import RunOptions, make_tracker, wandb_config

PAPER = {"paper_fig1": (6, 4, 3), "paper_fig2": (6, 3, 3), "paper_fig5": (1, 2, 3)}
MBMPO = MBMPOConfig()


def mbmpo_iterations(total_env_steps: int, horizon: int) -> int:
    """Iterations the shared loop runs for a budget (episodes never terminate early)."""
    per_iteration = MBMPO.meta_batch_size * horizon
    return 1 + math.ceil((total_env_steps - MBMPO.initial_random_steps) / per_iteration)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_manifest_loads_validates_and_expands_to_the_grid(name: str) -> None:
    manifest = load_manifest(name)
    envs, methods, seeds = PAPER[name]
    specs = manifest.expand()
    assert (len(manifest.envs), len(manifest.methods), len(manifest.seeds)) == PAPER[name]
    assert len(specs) == envs * methods * seeds
    assert len({s.run_id for s in specs}) == len(specs)
    assert len({s.wandb_id for s in specs}) == len(specs)
    check_method_configs(specs)  # every method config builds (imports the method classes)
    for spec in specs:
        assert spec.cpus >= 1 and spec.gpus == 0.0
        assert not spec.scaled and spec.seed in (0, 1, 2)
        assert spec.budget.eval_every <= spec.budget.total_env_steps


def test_fig1_grid_and_budgets_match_the_paper_and_the_figure() -> None:
    specs = load_manifest("paper_fig1").expand()
    figure = FIGURES["fig1"]
    assert {s.env for s in specs} == set(figure.envs)
    assert {canonical_method(s.method) for s in specs} == set(figure.methods)
    for spec in specs:
        assert get_env(spec.env).horizon == 200
        steps = spec.budget.total_env_steps
        if spec.method == "mbmpo":
            assert mbmpo_iterations(steps, 200) == 100  # about 4e5 real steps
            assert spec.budget.eval_every == MBMPO.meta_batch_size * 200  # every iteration
        else:
            assert 1_000_000 <= steps <= figure.x_max == 10_000_000
            assert steps // spec.budget.eval_every >= 100  # enough points for a log-x curve
    assert {s.budget.total_env_steps for s in specs if s.method in ("trpo", "ppo")} == {10**7}
    mbmpo_cpus = {s.cpus for s in specs if s.method == "mbmpo"}
    assert mbmpo_cpus == {2} and {s.cpus for s in specs if s.method != "mbmpo"} == {1}


def test_fig2_grid_and_budgets_match_the_paper_and_the_figure() -> None:
    specs = load_manifest("paper_fig2").expand()
    figure = FIGURES["fig2"]
    assert {s.env for s in specs} == set(figure.envs)
    assert {canonical_method(s.method) for s in specs} == set(figure.methods)
    assert {s.budget.total_env_steps for s in specs} == {int(figure.x_max or 0)} == {400_000}


def test_fig5_variants_are_told_apart_by_the_analysis(tmp_path: Path) -> None:
    specs = load_manifest("paper_fig5").expand()
    options = RunOptions(results_root=tmp_path)
    labels = {}
    for spec in specs:
        assert spec.env == "halfcheetah-h1000" and get_env(spec.env).horizon == 1000
        assert spec.target == "mbmpo.algo:MBMPO"
        config = spec.method_config
        assert config["imagined_horizon"] == 500 and config["start_states"] == "buffer"
        assert mbmpo_iterations(spec.budget.total_env_steps, 1000) == 60
        w = wandb_config(spec, options)
        assert w["base_method"] == "mbmpo"
        labels[spec.run_id] = (spec.method, w["method"], w["variant"], figure_variant(w))
    assert labels["halfcheetah-h1000__mbmpo__s0"] == ("mbmpo", "mbmpo", None, VARIANT_ADAPT)
    assert labels["halfcheetah-h1000__mbmpo-noadapt__s2"] == (
        "mbmpo-noadapt",
        "mbmpo-noadapt",
        VARIANT_NO_ADAPT,
        VARIANT_NO_ADAPT,
    )
    inner = {s.method: s.method_config["inner_lr"] for s in specs}
    assert inner == {"mbmpo": 0.001, "mbmpo-noadapt": 0.0}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_dry_run_and_scaled_runs_are_tagged(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    assert run_main([name, "--dry-run", "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    envs, methods, seeds = PAPER[name]
    assert f"would run {envs * methods * seeds}, resume 0, skip 0" in out
    assert run_main([name, "--dry-run", "--scale", "0.01", "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "budgets scaled x0.01" in out and "__x0.01" in out
    assert not results.exists()  # a dry run writes nothing

    full = load_manifest(name).expand()
    scaled = load_manifest(name).expand(scale=0.01)
    options = RunOptions(results_root=tmp_path)
    for a, b in zip(full, scaled, strict=True):
        assert b.run_id == f"{a.run_id}__x0.01" and b.scaled and b.wandb_id != a.wandb_id
        assert b.budget.total_env_steps == round(a.budget.total_env_steps * 0.01)
        config = wandb_config(b, options)
        assert config["scale"] == 0.01
        assert "scaled" in make_tracker(b, options, config).tags
        assert "scaled" not in make_tracker(a, options, wandb_config(a, options)).tags


def _base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "methods": ["ppo", "ppo-big"],
        "envs": ["pendulum"],
        "seeds": 1,
        "budget": {"total_env_steps": 1000, "eval_every": 500},
        "variants": {
            "ppo-big": {"method": "ppo", "label": "big batch", "config": {"n_steps": 512}}
        },
        "method_overrides": {"ppo-big": {"config": {"batch_size": 32}}},
    }
    data.update(changes)
    return data


def test_variant_entry_runs_its_base_method_with_its_config(tmp_path: Path) -> None:
    specs = parse_manifest(_base(), tmp_path / "v.yaml").expand()
    by_method = {s.method: s for s in specs}
    big, plain = by_method["ppo-big"], by_method["ppo"]
    assert big.run_id == "pendulum__ppo-big__s0" and big.target == plain.target
    assert (big.base_method, big.variant) == ("ppo", "big batch")
    assert (plain.base_method, plain.variant) == (None, None)
    assert big.method_config["n_steps"] == 512 and big.method_config["batch_size"] == 32
    assert plain.method_config["n_steps"] != 512  # the variant does not leak into ppo
    assert RunSpec.from_dict(big.to_dict()) == big
    check_method_configs(specs)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"variants": {"ppo-big": {"method": "sac"}}}, ["variants.ppo-big.method", "trpo"]),
        ({"variants": {"ppo": {"method": "trpo"}}}, ["variants.ppo", "registered method"]),
        ({"variants": {"ppo-big": {"method": "ppo", "cfg": {}}}}, ["variants.ppo-big.cfg"]),
        ({"variants": {"ppo-big": {"method": "ppo", "label": ""}}}, ["variants.ppo-big.label"]),
        ({"variants": {"a__b": {"method": "ppo"}}}, ["variants.a__b", "no '__'"]),
        ({"methods": ["ppo"]}, ["variants.ppo-big", "not listed in methods"]),
        ({"resources": {"gpus": "one"}}, ["resources.gpus", "number >= 0"]),
    ],
)
def test_bad_variants_and_gpus_are_named(
    tmp_path: Path, changes: dict[str, Any], words: list[str]
) -> None:
    data = _base(**changes)
    if "methods" in changes:
        data.pop("method_overrides")
    path = tmp_path / "bad.yaml"
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_gpus_resource_layers_and_reaches_the_spec(tmp_path: Path) -> None:
    data = _base(
        resources={"cpus": 2, "gpus": 0.25},
        run_overrides={"pendulum/ppo-big": {"resources": {"gpus": 1}}},
    )
    specs = {s.method: s for s in parse_manifest(data, tmp_path / "g.yaml").expand()}
    assert (specs["ppo"].cpus, specs["ppo"].gpus) == (2, 0.25)
    assert (specs["ppo-big"].cpus, specs["ppo-big"].gpus) == (2, 1.0)
    assert wandb_config(specs["ppo-big"], RunOptions(results_root=tmp_path))["gpus"] == 1.0
