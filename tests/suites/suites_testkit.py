"""A small but real Method for exercising the suite machinery without a learning algorithm:
random actions on the real env, real evaluation episodes, real tracker calls and a JSON
checkpoint it resumes from. Importable by worker processes when this folder is on PYTHONPATH.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mbmpo.envs import EnvSpec
from mbmpo.protocols import (
    EVAL_EPISODES,
    EVAL_RETURN_MEAN,
    EVAL_RETURN_STD,
    WALL_S,
    Budget,
    RunSummary,
    Tracker,
)

TESTKIT_DIR = Path(__file__).resolve().parent
TARGET = "suites_testkit:RandomMethod"
CHECKPOINT = "random_ckpt.json"


class RandomMethod:
    """Uniform random actions; evaluates every ``budget.eval_every`` steps and checkpoints.

    Config keys: ``fail`` (raise after the first evaluation), ``step_sleep`` (seconds per env
    step, to make a slow run), ``marker`` (any value; shows up in the config).
    """

    ALLOWED = ("fail", "step_sleep", "marker")

    def __init__(
        self,
        env: EnvSpec,
        seed: int,
        config: Mapping[str, Any],
        tracker: Tracker,
        run_dir: Path,
        device: str = "cpu",
    ) -> None:
        unknown = sorted(set(config) - set(self.ALLOWED))
        if unknown:
            raise ValueError(f"RandomMethod config: unknown keys {unknown}; allowed {self.ALLOWED}")
        self.env = env
        self.seed = seed
        self.fail = bool(config.get("fail", False))
        self.step_sleep = float(config.get("step_sleep", 0.0))
        self.tracker = tracker
        self.run_dir = Path(run_dir)

    def _evaluate(self, episodes: int, index: int) -> list[float]:
        env = self.env.make(seed=self.seed + 10_000 + index)
        rng = np.random.default_rng(self.seed + index)
        returns = []
        for _ in range(episodes):
            env.reset(seed=int(rng.integers(2**31)))
            total, done = 0.0, False
            while not done:
                action = rng.uniform(-1.0, 1.0, size=env.action_space.shape)
                _, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        env.close()
        return returns

    def train(self, budget: Budget) -> RunSummary:
        t0 = time.perf_counter()
        ckpt_path = self.run_dir / CHECKPOINT
        state: dict[str, Any] = {
            "env_steps": 0,
            "wall_s": 0.0,
            "last_return": math.nan,
            "resumed_from": [],
        }
        if ckpt_path.is_file():
            state = json.loads(ckpt_path.read_text())
            state["resumed_from"].append(state["env_steps"])
        (self.run_dir / f"pid-{os.getpid()}").write_text("")
        steps = int(state["env_steps"])
        env = self.env.make(seed=self.seed + steps)
        rng = np.random.default_rng(self.seed + steps)
        env.reset(seed=self.seed + steps)
        while steps < budget.total_env_steps:
            target = min(
                budget.total_env_steps, (steps // budget.eval_every + 1) * budget.eval_every
            )
            while steps < target:
                _, _, terminated, truncated, _ = env.step(
                    rng.uniform(-1.0, 1.0, size=env.action_space.shape)
                )
                steps += 1
                if terminated or truncated:
                    env.reset()
                if self.step_sleep:
                    time.sleep(self.step_sleep)
            returns = self._evaluate(budget.eval_episodes, steps // budget.eval_every)
            wall = state["wall_s"] + time.perf_counter() - t0
            state.update(env_steps=steps, wall_s=wall, last_return=float(np.mean(returns)))
            ckpt_path.write_text(json.dumps(state))
            self.tracker.log(
                {
                    EVAL_RETURN_MEAN: float(np.mean(returns)),
                    EVAL_RETURN_STD: float(np.std(returns)),
                    EVAL_EPISODES: float(len(returns)),
                    WALL_S: wall,
                    "train/random_steps": float(steps),
                },
                step=steps,
            )
            if self.fail:
                raise RuntimeError("RandomMethod: configured failure (fail: true)")
        env.close()
        return RunSummary(
            env_steps=steps,
            final_return=float(state["last_return"]),
            wall_s=float(state["wall_s"]),
            extra={"resumes": float(len(state["resumed_from"]))},
        )
