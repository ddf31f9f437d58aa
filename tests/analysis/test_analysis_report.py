"""The HTML report from real offline runs, the W&B Report object, and variant handling."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from analysis_fixtures import Runs, steps_for, value

from analysis.curves import align_seeds
from analysis.figures import MissingRunsWarning
from analysis.load import load_runs_and_info
from analysis.report import build_wandb_report, main, publish, write_report
from analysis.variants import MixedVariantsWarning, split_variants, variant_methods

SUITES = ["mini", "mini-scaled", "fig5"]


def test_html_report_is_self_contained_and_complete(
    wandb_runs: Runs, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r" / "report.html"
    with pytest.warns(MissingRunsWarning):
        path = write_report(wandb_runs.root, out, SUITES)
    assert path == out
    text = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    # one curves figure per suite + fig1, fig2 (halfcheetah/hopper runs) and fig5
    assert len(images) == len(SUITES) + 3
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(http|//)', text)  # nothing fetched from outside
    for suite in SUITES:
        assert f"Suite <code>{suite}</code>" in text
    assert "hopper/ppo: expected 3 seeds, found 2" in text
    assert "no runs for env &#x27;ant&#x27;" in text
    # every run's config, commit and versions
    _, infos = load_runs_and_info(wandb_runs.root, SUITES)
    assert len(infos) == 11 + 2 + 4
    for info in infos:
        assert f"<code>{info.run_id}</code>" in text
    assert text.count("commit <code>0123456789abcdef</code>") == len(infos)
    assert "torch 2.13.0" in text and "&quot;inner_lr&quot;: 0.001" in text
    # table numbers: hopper/mbmpo final mean over its three seeds
    final = np.mean([value("hopper", "mbmpo", s, steps_for(s)[-1]) for s in (0, 1, 2)])
    assert f"{final:,.1f} ± " in text
    # the fig5 variants are told apart in the suite's curves and table
    assert "mbmpo[inner_lr=0.001]" in text and "mbmpo[inner_lr=0.0]" in text


def test_cli_writes_report(
    wandb_runs: Runs, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.html"
    with pytest.warns(MissingRunsWarning):
        main(["--source", str(wandb_runs.suite_dir), "--out", str(out)])
    assert out.exists() and str(out) in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--source", str(wandb_runs.suite_dir), "--out", str(out), "--publish"])


def test_wandb_report_object_and_publish_boundary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import wandb_workspaces.reports.v2 as wr

    panels = [
        ("mini", "halfcheetah", ["mbmpo", "ppo"]),
        ("mini", "hopper", ["mbmpo"]),
        ("fig5", "halfcheetah-h1000", ["mbmpo"]),
    ]
    report = build_wandb_report("my-team", "mbmpo-suite", panels)
    assert isinstance(report, wr.Report)
    assert report.entity == "my-team" and report.project == "mbmpo-suite"
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert len(grids) == 3
    headings = [b.text for b in report.blocks if isinstance(b, wr.H2)]
    assert headings == ["Suite fig5", "Suite mini"]
    by_title = {g.panels[0].title: g for g in grids}
    cheetah = by_title["halfcheetah"]
    plot = cheetah.panels[0]
    assert plot.x == "env_steps" and plot.y == ["eval/return_mean"]
    assert plot.groupby_aggfunc == "mean" and plot.groupby_rangefunc == "stddev"
    assert plot.log_x is True  # ppo (model-free) is in this panel
    assert by_title["hopper"].panels[0].log_x is False
    runset = cheetah.runsets[0]
    assert runset.entity == "my-team" and runset.groupby == ["config.method"]
    assert "'mini'" in str(runset.filters) and "'halfcheetah'" in str(runset.filters)
    # saving needs a W&B login: without one it stops with a clear error
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no ~/.config/wandb credentials
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(RuntimeError, match="wandb login"):
        publish(report)
    with pytest.raises(ValueError, match="--entity and --project"):
        build_wandb_report("", "p", panels)


def test_variants_split_and_mixed_variants_warned(wandb_runs: Runs, cache_dir: Path) -> None:
    df, infos = load_runs_and_info(wandb_runs.root, ["fig5"])
    mapping = variant_methods(infos)
    assert mapping == {
        ("fig5", "halfcheetah-h1000__mbmpo__s0"): "mbmpo[inner_lr=0.001]",
        ("fig5", "halfcheetah-h1000__mbmpo__s1"): "mbmpo[inner_lr=0.001]",
        ("fig5", "halfcheetah-h1000__mbmpo-noadapt__s0"): "mbmpo[inner_lr=0.0]",
        ("fig5", "halfcheetah-h1000__mbmpo-noadapt__s1"): "mbmpo[inner_lr=0.0]",
    }
    with pytest.warns(MixedVariantsWarning, match="share seeds"):
        mixed = align_seeds(df)
    assert set(mixed["n_seeds"]) == {4}
    split = align_seeds(split_variants(df, infos))
    assert set(split["method"]) == {"mbmpo[inner_lr=0.001]", "mbmpo[inner_lr=0.0]"}
    assert set(split["n_seeds"]) == {2}
    # runs of the mini suite are not variants: nothing renamed
    df2, infos2 = load_runs_and_info(wandb_runs.suite_dir)
    assert variant_methods(infos2) == {}
    assert split_variants(df2, infos2) is df2
