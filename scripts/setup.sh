#!/usr/bin/env bash
# Create ./.venv with everything the suite needs (idempotent: a second call only checks).
# torch is installed first and pinned so that pip takes the CPU build and never a multi-GB CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $PY"
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import mbmpo, torch, stable_baselines3, wandb" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
    echo "[setup] installing torch==2.13.0 (CPU) and the project"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -e ".[dev]"
    touch .venv/.installed
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__)')"
