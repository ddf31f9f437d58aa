"""Manifest validation, expansion, stable ids, overrides and scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mbmpo.envs import list_envs
from suites import registry
from suites.manifest import (
    ManifestError,
    check_method_configs,
    filter_runs,
    load_manifest,
    make_run_id,
    wandb_run_id,
)
from suites.run import main as run_main


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "methods": ["trpo", "ppo"],
        "envs": ["pendulum"],
        "seeds": 2,
        "budget": {"total_env_steps": 1000, "eval_every": 200, "eval_episodes": 2},
    }
    data.update(changes)
    return data


def test_expand_grid_ids_and_budget(write_manifest) -> None:
    manifest = load_manifest(write_manifest(base(description="d")))
    specs = manifest.expand()
    assert [s.run_id for s in specs] == [
        "pendulum__trpo__s0",
        "pendulum__ppo__s0",
        "pendulum__trpo__s1",
        "pendulum__ppo__s1",
    ]
    assert all(s.budget.total_env_steps == 1000 and s.budget.eval_every == 200 for s in specs)
    assert all(s.budget.eval_episodes == 2 and s.cpus == 1 and s.scale == 1.0 for s in specs)
    assert specs[0].target == registry.method_target("trpo")
    assert specs[0].suite == "t" and specs[0].manifest == str(manifest.path)


def test_ids_are_stable_and_distinct(write_manifest) -> None:
    path = write_manifest(base())
    first = load_manifest(path).expand()
    second = load_manifest(path).expand()
    assert first == second
    assert [s.wandb_id for s in first] == [s.wandb_id for s in second]
    assert len({s.wandb_id for s in first}) == len(first)
    assert first[0].wandb_id == wandb_run_id("t", "pendulum__trpo__s0")
    # another suite with the same run id gets another W&B id
    assert wandb_run_id("other", "pendulum__trpo__s0") != first[0].wandb_id


def test_spec_round_trips_through_dict(write_manifest) -> None:
    from suites.manifest import RunSpec

    for spec in load_manifest(write_manifest(base())).expand(scale=0.5):
        assert RunSpec.from_dict(spec.to_dict()) == spec


def test_defaults_then_overrides_precedence(write_manifest, tmp_path: Path) -> None:
    hp = tmp_path / "hp"
    hp.mkdir()
    (hp / "ppo.yaml").write_text("n_steps: 50\nbatch_size: 10\ngamma: 0.9\n")
    data = base(
        seeds=[3],
        resources={"cpus": 2},
        env_overrides={"pendulum": {"budget": {"eval_every": 100}}},
        method_overrides={
            "ppo": {"config": {"n_steps": 60}, "budget": {"total_env_steps": 500}},
        },
        run_overrides={"pendulum/ppo": {"config": {"gamma": 0.5}, "resources": {"cpus": 1}}},
    )
    specs = {s.method: s for s in load_manifest(write_manifest(data)).expand(hyperparams_dir=hp)}
    ppo, trpo = specs["ppo"], specs["trpo"]
    assert dict(ppo.method_config) == {"n_steps": 60, "batch_size": 10, "gamma": 0.5}
    assert (ppo.budget.total_env_steps, ppo.budget.eval_every) == (500, 100)
    assert ppo.cpus == 1 and trpo.cpus == 2
    assert dict(trpo.method_config) == {}  # no trpo.yaml in hp
    assert (trpo.budget.total_env_steps, trpo.budget.eval_every) == (1000, 100)
    assert ppo.run_id == "pendulum__ppo__s3"


def test_scale_tags_ids_and_budgets(write_manifest) -> None:
    specs = load_manifest(write_manifest(base(seeds=[0]))).expand(scale=0.05)
    spec = specs[0]
    assert spec.run_id == "pendulum__trpo__s0__x0.05"
    assert spec.scale == 0.05 and spec.scaled
    assert (spec.budget.total_env_steps, spec.budget.eval_every) == (50, 10)
    assert spec.budget.eval_episodes == 2  # episodes are not scaled
    tiny = load_manifest(write_manifest(base(seeds=[0]))).expand(scale=1e-6)[0]
    assert (tiny.budget.total_env_steps, tiny.budget.eval_every) == (1, 1)
    assert make_run_id("e", "m", 1, 2.0) == "e__m__s1__x2"
    with pytest.raises(ValueError, match="scale"):
        load_manifest(write_manifest(base())).expand(scale=0)


def test_filter_runs(write_manifest) -> None:
    specs = load_manifest(write_manifest(base())).expand()
    assert [s.run_id for s in filter_runs(specs, "ppo")] == [
        "pendulum__ppo__s0",
        "pendulum__ppo__s1",
    ]
    assert [s.run_id for s in filter_runs(specs, "*__s1")] == [
        "pendulum__trpo__s1",
        "pendulum__ppo__s1",
    ]
    assert len(filter_runs(specs, "trpo__s0,ppo__s1")) == 2
    assert filter_runs(specs, "nomatch") == []
    assert filter_runs(specs, None) == specs


BAD_CASES = [
    # (changes, key named in the message, allowed values named in the message)
    ({"methods": ["trpo", "sac"]}, "methods[1]", ["ddpg", "mbmpo", "ppo", "trpo"]),
    ({"envs": ["nope"]}, "envs[0]", list_envs()),
    ({"budgett": {}}, "budgett", ["budget", "method_overrides", "run_overrides"]),
    ({"seeds": "two"}, "seeds", ["list of ints"]),
    ({"seeds": [0, -1]}, "seeds[1]", ["int >= 0"]),
    ({"methods": "trpo", "envs": 3}, "envs", ["list of env names"]),
    (
        {"budget": {"total_env_steps": -5, "eval_every": 1}},
        "budget.total_env_steps",
        ["positive int"],
    ),
    (
        {"budget": {"total_env_steps": 5.5, "eval_every": 1}},
        "budget.total_env_steps",
        ["positive int"],
    ),
    (
        {"budget": {"total_env_steps": 10, "eval_every": True}},
        "budget.eval_every",
        ["positive int"],
    ),
    ({"budget": {"total_env_steps": 10}}, "budget.eval_every", ["missing"]),
    (
        {"budget": {"total_env_steps": 10, "eval_every": 1, "evals": 3}},
        "budget.evals",
        ["eval_episodes"],
    ),
    ({"budget": [10, 5]}, "budget", ["mapping"]),
    ({"resources": {"tpus": 1}}, "resources.tpus", ["cpus, gpus"]),
    ({"resources": {"gpus": -1}}, "resources.gpus", [">= 0"]),
    ({"resources": {"cpus": 0}}, "resources.cpus", [">= 1"]),
    ({"methods": []}, "methods", ["empty grid", "trpo"]),
    ({"envs": []}, "envs", ["empty grid", "pendulum"]),
    ({"seeds": []}, "seeds", ["empty grid"]),
    ({"seeds": 0}, "seeds", ["empty grid"]),
    ({"method_overrides": {"ddpg": {"config": {}}}}, "method_overrides.ddpg", ["trpo, ppo"]),
    (
        {"method_overrides": {"ppo": {"cfg": {}}}},
        "method_overrides.ppo.cfg",
        ["config, budget, resources"],
    ),
    ({"method_overrides": {"ppo": {"config": [1]}}}, "method_overrides.ppo.config", ["mapping"]),
    (
        {"env_overrides": {"pendulum": {"config": {}}}},
        "env_overrides.pendulum.config",
        ["budget, resources"],
    ),
    ({"run_overrides": {"pendulum-ppo": {}}}, "run_overrides.pendulum-ppo", ["env/method"]),
    ({"run_overrides": {"pendulum/ddpg": {}}}, "run_overrides.pendulum/ddpg", ["trpo, ppo"]),
    ({"name": "bad name!"}, "name", ["letters, digits"]),
]


@pytest.mark.parametrize(("changes", "key", "allowed"), BAD_CASES)
def test_bad_manifest_names_file_key_and_allowed(
    write_manifest, tmp_path: Path, changes: dict[str, Any], key: str, allowed: list[str]
) -> None:
    path = write_manifest(base(**changes))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{key}:" in message
    for word in allowed:
        assert word in message
    # the CLI reports it and writes nothing
    results = tmp_path / "results"
    assert run_main([str(path), "--results-dir", str(results), "--no-figure"]) == 2
    assert not results.exists()


def test_missing_keys_and_all_problems_in_one_message(write_manifest) -> None:
    path = write_manifest({"methods": ["sac"], "envs": ["nope"]})
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    for part in ("methods[0]", "envs[0]", "seeds: missing", "budget: missing"):
        assert part in message
    assert message.count(str(path)) == 1


@pytest.mark.parametrize("text", ["[1, 2]", "methods: [trpo\n", ""])
def test_not_a_mapping_or_not_yaml(write_manifest, text: str) -> None:
    path = write_manifest(text)
    with pytest.raises(ManifestError, match=str(path)):
        load_manifest(path)


def test_unknown_manifest_name_lists_available() -> None:
    with pytest.raises(ManifestError, match="available: .*smoke"):
        load_manifest("no_such_suite")


def test_smoke_manifest_is_valid() -> None:
    manifest = load_manifest("smoke")
    specs = manifest.expand()
    from suites import registry

    # smoke covers every registered method
    assert {s.method for s in specs} == set(registry.list_methods())
    assert {s.env for s in specs} == {"pendulum"} and {s.seed for s in specs} == {0, 1}
    check_method_configs(specs)  # every method's config accepts the merged keys and values


def test_method_config_checked_before_running(write_manifest) -> None:
    path = write_manifest(base(method_overrides={"ppo": {"config": {"n_stepz": 10}}}))
    specs = load_manifest(path).expand()
    with pytest.raises(ManifestError) as info:
        check_method_configs(specs)
    message = str(info.value)
    assert str(path) in message and "n_stepz" in message and "n_steps" in message


@pytest.mark.parametrize(
    ("method", "bad", "expected"),
    [
        ("mbmpo", {"inner_lrr": 0.1}, "inner_lr"),
        ("mbmpo", {"meta_batch_size": 7}, "multiple"),
        ("me-trpo", {"trpo_stepz": 1}, "trpo_steps"),
        ("mb-mpc", {"candidatez": 1}, "candidates"),
    ],
)
def test_model_based_configs_checked_before_running(
    write_manifest, method: str, bad: dict, expected: str
) -> None:
    path = write_manifest(base(methods=[method], method_overrides={method: {"config": bad}}))
    with pytest.raises(ManifestError) as info:
        check_method_configs(load_manifest(path).expand())
    assert str(path) in str(info.value) and expected in str(info.value)


def test_unimportable_method_reported_before_running(write_manifest, monkeypatch) -> None:
    monkeypatch.setitem(registry._METHODS, "ghost", "no_such_module_xyz:Ghost")
    path = write_manifest(base(methods=["ghost"], seeds=[0]))
    with pytest.raises(ManifestError, match=r"cannot import ghost \(no_such_module_xyz:Ghost\)"):
        check_method_configs(load_manifest(path).expand())
