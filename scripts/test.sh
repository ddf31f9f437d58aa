#!/usr/bin/env bash
# Run the default (fast) test suite; sets up .venv first if needed. Slow learning tests:
#   .venv/bin/python -m pytest -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg WANDB_MODE=offline WANDB_SILENT=true RAY_AUTH_MODE=disabled
exec .venv/bin/python -m pytest -q "$@"
