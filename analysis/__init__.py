"""Analysis: read runs from W&B into pandas, redraw the paper figures, tables and reports.

Reads logs only (never imports ``mbmpo``, ``baselines`` or ``suites``). Modules:

- ``wandb_offline``  reader of wandb 0.31 offline run files (``run-<id>.wandb``)
- ``load``           ``load_runs(source, suite=None)`` -> tidy DataFrame (``run_id, suite, env,
                     method, seed, scale, env_steps, metric, value``), from a folder of offline runs
                     or ``wandb://entity/project``; cached under ``$MBMPO_ANALYSIS_CACHE``
- ``curves``         ``plot_learning_curves(df, out, metric)``: mean +- std over seeds per method
- ``figures``        the paper's Figures 1, 2 and 5 (PNG + PDF), with missing-run warnings
- ``tables``         per-suite summary tables (CSV + Markdown)
- ``report``         a self-contained HTML report; optionally a live W&B Report
- ``variants``       tells apart variants of one method (e.g. alpha 0.001 vs 0) inside a suite

Command lines::

    python -m analysis.curves  --source results/smoke [--suite smoke] [--out curves.png]
    python -m analysis.figures fig1|fig2|fig5 --source results [--suite S ...] [--out-dir D]
    python -m analysis.tables  --source results/smoke --out-dir results/analysis
    python -m analysis.report  --source results --out results/analysis/report.html \\
        [--publish --entity E --project P]
"""
