"""The model-free baselines of Figure 1 (TRPO from sb3-contrib, PPO and DDPG from
stable-baselines3) behind the suite's :class:`~mbmpo.protocols.Method` interface.

How a run proceeds (shared by all three, in :class:`SB3Method`):

- The training envs are ``env.make(seed + i)`` (``n_envs`` of them, in a ``DummyVecEnv``, with
  ``VecNormalize`` when ``normalize_obs``); evaluation uses a separate ``env.make(seed + 10_000)``
  whose episodes start from seeds derived from ``(seed, evaluation index, episode)``, with
  deterministic actions.  Evaluation steps are not counted.
- Training runs in chunks of ``model.learn(..., reset_num_timesteps=False)`` up to the next
  evaluation point (a multiple of ``budget.eval_every``, or the budget).  On-policy methods only
  stop after whole rollouts, so they overshoot to the next multiple of ``n_steps * n_envs``; the
  evaluation is logged at the real step count.
- Each chunk starts by resetting the training envs from a seed derived from ``(seed, env_steps)``.
  A mid-episode MuJoCo state cannot be saved generically, so this is what makes a resumed run
  continue *exactly* as the uninterrupted one would have (the cost: an episode running across an
  evaluation point is cut there; on-policy methods bootstrap it with the value function, which is
  what they do at every rollout boundary anyway).
- After each evaluation the run is checkpointed into ``run_dir`` (SB3 model zip with optimiser
  state, VecNormalize statistics, DDPG's replay buffer, RNG states, counters) and only then is
  the evaluation row handed to the tracker; ``sb3_state.json`` is the commit point.  A new instance
  with the same ``run_dir`` resumes from the last checkpoint and never re-logs an evaluation the
  tracker already received.
"""

from __future__ import annotations

import abc
import json
import math
import os
import pickle
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import TRPO
from stable_baselines3 import DDPG, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import (
    ActionNoise,
    NormalActionNoise,
    OrnsteinUhlenbeckActionNoise,
)
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from torch import nn

from baselines.common import (
    STREAM_EVAL,
    STREAM_TRAIN_RESET,
    atomic_write_json,
    derive_seed,
    evaluate,
    non_finite_keys,
)
from baselines.sb3_config import DDPGConfig, OnPolicyConfig, PPOConfig, SB3Config, TRPOConfig
from baselines.sb3_param_noise import ParamNoiseDDPG
from baselines.sb3_policies import LayerNormTD3Policy
from mbmpo.config_utils import dataclass_from_mapping, dataclass_to_dict
from mbmpo.envs import EnvSpec
from mbmpo.protocols import (
    ENV_STEPS,
    EVAL_EPISODES,
    EVAL_RETURN_MEAN,
    EVAL_RETURN_STD,
    WALL_S,
    Budget,
    NonFiniteError,
    RunSummary,
    Tracker,
)

STATE_FILE = "sb3_state.json"
"""The run's commit record inside ``run_dir`` (names the current checkpoint folder)."""
EVAL_SEED_OFFSET = 10_000
"""The evaluation env is ``env.make(seed + EVAL_SEED_OFFSET)``."""
_FORMAT = 1
_ACTIVATION_FNS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass
class _Progress:
    """What a run has done so far; persisted in ``STATE_FILE``."""

    env_steps: int = 0
    wall_s: float = 0.0
    n_evals: int = 0
    last_return: float = math.nan
    last_return_std: float = math.nan
    n_updates: int = 0
    episode_num: int = 0
    ckpt: str | None = None
    pending: dict[str, float] | None = None
    """The latest evaluation row, until the tracker has taken it."""
    recent_returns: list[float] = field(default_factory=list)
    recent_lengths: list[int] = field(default_factory=list)


class SB3Method(abc.ABC):
    """A stable-baselines3 algorithm trained and evaluated on the suite's schedule.

    Subclasses set ``name`` and ``config_class`` and build the SB3 model; everything else (envs,
    chunked training, evaluation, logging, checkpoints, resume) lives here.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[SB3Config]]

    def __init__(
        self,
        env: EnvSpec,
        seed: int,
        config: Mapping[str, Any],
        tracker: Tracker,
        run_dir: Path,
        device: str = "cpu",
    ) -> None:
        self.config = dataclass_from_mapping(self.config_class, config, where=f"{self.name} config")
        self.env_spec = env
        self.seed = int(seed)
        self.tracker = tracker
        self.run_dir = Path(run_dir)
        self.device = device
        self._venv: VecEnv | None = None
        self._model: BaseAlgorithm | None = None

    # ----------------------------------------------------------------- per-algorithm hooks

    @abc.abstractmethod
    def _build_model(self, venv: VecEnv) -> BaseAlgorithm:
        """A fresh SB3 model on ``venv`` seeded with ``self.seed`` (seeds SB3's global RNGs)."""

    def _save_extra(self, model: BaseAlgorithm, folder: Path) -> None:
        """Save algorithm state that ``model.save`` leaves out (e.g. a replay buffer)."""
        return None

    def _load_extra(self, model: BaseAlgorithm, folder: Path) -> None:
        """Restore what :meth:`_save_extra` saved."""
        return None

    # ----------------------------------------------------------------- the run

    def train(self, budget: Budget) -> RunSummary:
        """Train to ``budget.total_env_steps`` real steps (resuming from ``run_dir`` if possible)."""
        t_start = time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        prog = self._read_state()
        if prog is None or prog.pending is not None or prog.env_steps < budget.total_env_steps:
            wall_before = prog.wall_s if prog is not None else 0.0

            def wall() -> float:
                return wall_before + (time.perf_counter() - t_start)

            prog = self._run(prog, budget, wall)
        summary = RunSummary(
            env_steps=prog.env_steps,
            final_return=prog.last_return,
            wall_s=prog.wall_s,
            extra={EVAL_RETURN_STD: prog.last_return_std, "train/n_updates": float(prog.n_updates)},
        )
        self.tracker.summary(
            {
                ENV_STEPS: summary.env_steps,
                "final_return": summary.final_return,
                WALL_S: summary.wall_s,
            }
        )
        return summary

    def _run(self, prog: _Progress | None, budget: Budget, wall: Callable[[], float]) -> _Progress:
        for stale in self.run_dir.glob(".ckpt_*.tmp-*"):  # left by a run killed mid-checkpoint
            shutil.rmtree(stale, ignore_errors=True)
        venv = self._make_venv(prog)
        eval_env = self.env_spec.make(self.seed + EVAL_SEED_OFFSET)
        try:
            model = self._build_model(venv)
            model.set_logger(Logger(folder=None, output_formats=[]))
            self._venv, self._model = venv, model
            if prog is None:
                prog = _Progress()
            else:
                self._restore(model, prog)
                if prog.pending is not None:  # checkpointed, but the tracker never got the row
                    self._deliver(prog)
            if prog.n_evals == 0:  # the untrained policy, at step 0
                self._evaluate_and_checkpoint(model, prog, budget, eval_env, wall, {})
            while prog.env_steps < budget.total_env_steps:
                next_eval = (prog.env_steps // budget.eval_every + 1) * budget.eval_every
                target = min(next_eval, budget.total_env_steps)
                stats = self._learn(model, target - prog.env_steps, prog.env_steps)
                prog.env_steps = int(model.num_timesteps)
                self._evaluate_and_checkpoint(model, prog, budget, eval_env, wall, stats)
        finally:
            venv.close()
            eval_env.close()
            self._venv, self._model = None, None
        return prog

    def _make_venv(self, prog: _Progress | None) -> VecEnv:
        spec, seed = self.env_spec, self.seed

        def make(i: int) -> Any:
            return lambda: Monitor(spec.make(seed + i))

        venv: VecEnv = DummyVecEnv([make(i) for i in range(self.config.n_envs)])
        if self.config.normalize_obs:
            stats = self.run_dir / prog.ckpt / "vecnormalize.pkl" if prog and prog.ckpt else None
            if stats is not None and stats.exists():
                venv = VecNormalize.load(str(stats), venv)
            else:
                venv = VecNormalize(
                    venv, norm_obs=True, norm_reward=False, clip_obs=10.0, gamma=self.config.gamma
                )
            venv.training = True
        return venv

    def _learn(self, model: BaseAlgorithm, steps: int, env_steps: int) -> dict[str, float]:
        """Train for at least ``steps`` more env steps; returns SB3's latest ``train/...`` stats."""
        assert self._venv is not None
        self._venv.seed(derive_seed(self.seed, STREAM_TRAIN_RESET, env_steps))
        model._last_obs = None  # type: ignore[assignment]  # makes learn() reset the envs
        # log_interval=None: SB3 never dumps its logger inside learn(); we read it afterwards
        model.learn(total_timesteps=steps, reset_num_timesteps=False, log_interval=None)  # type: ignore[arg-type]
        stats = {
            k: float(v)
            for k, v in model.logger.name_to_value.items()
            if k.startswith("train/") and isinstance(v, (int, float, np.number))
        }
        model.logger.dump()  # clear
        if model.ep_info_buffer:
            stats["train/ep_return_mean"] = float(np.mean([e["r"] for e in model.ep_info_buffer]))
            stats["train/ep_length_mean"] = float(np.mean([e["l"] for e in model.ep_info_buffer]))
        bad = [k for k in non_finite_keys(stats) if "loss" in k or "objective" in k]
        if bad:
            raise NonFiniteError(
                f"{self.name} on {self.env_spec.name}: non-finite {bad} in the training step "
                f"ending at {model.num_timesteps} env steps"
            )
        return stats

    def _act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action ``[act]`` for one raw observation ``[obs]``."""
        assert self._model is not None and self._venv is not None
        policy_obs = obs
        if isinstance(self._venv, VecNormalize):
            policy_obs = cast(np.ndarray, self._venv.normalize_obs(obs))
        action, _ = self._model.predict(policy_obs, deterministic=True)
        return np.asarray(action)

    def _evaluate_and_checkpoint(
        self,
        model: BaseAlgorithm,
        prog: _Progress,
        budget: Budget,
        eval_env: gym.Env,
        wall: Callable[[], float],
        stats: dict[str, float],
    ) -> None:
        seeds = [
            derive_seed(self.seed, STREAM_EVAL, prog.n_evals, k)
            for k in range(budget.eval_episodes)
        ]
        returns = evaluate(self._act, eval_env, seeds)
        if not np.all(np.isfinite(returns)):
            raise NonFiniteError(
                f"{self.name} on {self.env_spec.name}: non-finite evaluation return at "
                f"{prog.env_steps} env steps"
            )
        prog.n_evals += 1
        prog.last_return = float(returns.mean())
        prog.last_return_std = float(returns.std())
        prog.n_updates = int(getattr(model, "_n_updates", 0))
        prog.episode_num = int(getattr(model, "_episode_num", 0))
        prog.recent_returns = [float(e["r"]) for e in model.ep_info_buffer or []]
        prog.recent_lengths = [int(e["l"]) for e in model.ep_info_buffer or []]
        prog.wall_s = wall()
        prog.pending = {
            ENV_STEPS: float(prog.env_steps),
            EVAL_RETURN_MEAN: prog.last_return,
            EVAL_RETURN_STD: prog.last_return_std,
            EVAL_EPISODES: float(len(returns)),
            WALL_S: prog.wall_s,
            **stats,
        }
        self._checkpoint(model, prog)
        self._deliver(prog)

    def _deliver(self, prog: _Progress) -> None:
        """Hand the pending evaluation row to the tracker, then record that it was taken."""
        assert prog.pending is not None
        self.tracker.log(prog.pending, step=int(prog.pending[ENV_STEPS]))
        prog.pending = None
        self._write_state(prog)

    # ----------------------------------------------------------------- checkpoints

    def _checkpoint(self, model: BaseAlgorithm, prog: _Progress) -> None:
        """Write a new checkpoint folder, commit it in ``STATE_FILE``, delete older ones."""
        name = f"ckpt_{prog.n_evals:06d}_{prog.env_steps:012d}"
        final = self.run_dir / name
        tmp = self.run_dir / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model.save(tmp / "model.zip")
        if isinstance(self._venv, VecNormalize):
            self._venv.save(str(tmp / "vecnormalize.pkl"))
        self._save_extra(model, tmp)
        rng = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "action_space": model.action_space.np_random.bit_generator.state,
        }
        with open(tmp / "rng.pkl", "wb") as fh:
            pickle.dump(rng, fh)
        if final.exists():  # left over by a run killed before it committed this checkpoint
            shutil.rmtree(final)
        os.replace(tmp, final)
        prog.ckpt = name
        self._write_state(prog)
        for old in self.run_dir.glob("ckpt_*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    def _restore(self, model: BaseAlgorithm, prog: _Progress) -> None:
        """Load the committed checkpoint into the freshly built ``model``."""
        assert prog.ckpt is not None
        folder = self.run_dir / prog.ckpt
        model.set_parameters(str(folder / "model.zip"), exact_match=True, device=self.device)
        model.num_timesteps = prog.env_steps
        model._n_updates = prog.n_updates  # type: ignore[attr-defined]
        model._episode_num = prog.episode_num
        model.ep_info_buffer = deque(
            (
                {"r": r, "l": n, "t": 0.0}
                for r, n in zip(prog.recent_returns, prog.recent_lengths, strict=True)
            ),
            maxlen=model._stats_window_size,
        )
        model.ep_success_buffer = deque(maxlen=model._stats_window_size)
        self._load_extra(model, folder)
        with open(folder / "rng.pkl", "rb") as fh:
            rng = pickle.load(fh)
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        model.action_space.np_random.bit_generator.state = rng["action_space"]

    def _identity(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "env": self.env_spec.name,
            "seed": self.seed,
            "config": dataclass_to_dict(self.config),
        }

    def _write_state(self, prog: _Progress) -> None:
        data = {"format": _FORMAT, **self._identity(), "progress": prog.__dict__}
        atomic_write_json(self.run_dir / STATE_FILE, data)

    def _read_state(self) -> _Progress | None:
        """The committed progress in ``run_dir``, or None for a fresh run.

        :raises ValueError: if ``run_dir`` holds a checkpoint of a different run (method, env,
            seed or config differ), which would silently mix two experiments.
        """
        path = self.run_dir / STATE_FILE
        if not path.exists():
            return None
        with open(path) as fh:
            data = json.load(fh)
        mine = self._identity()
        theirs = {k: data.get(k) for k in mine}
        if data.get("format") != _FORMAT or theirs != mine:
            diff = sorted(k for k in mine if theirs[k] != mine[k])
            raise ValueError(
                f"{path}: holds a checkpoint of a different run (differs in {diff or ['format']}); "
                f"use a fresh run_dir or delete this one"
            )
        return _Progress(**data["progress"])


# --------------------------------------------------------------------- on-policy: TRPO, PPO


def _on_policy_kwargs(c: OnPolicyConfig) -> dict[str, Any]:
    return {
        "net_arch": {"pi": list(c.policy_hidden), "vf": list(c.value_hidden)},
        "activation_fn": _ACTIVATION_FNS[c.activation],
        "log_std_init": c.log_std_init,
    }


class TRPOMethod(SB3Method):
    """sb3-contrib TRPO (paper: batch 50k, KL 0.01, policy (32, 32) tanh)."""

    name = "trpo"
    config_class = TRPOConfig
    config: TRPOConfig

    def _build_model(self, venv: VecEnv) -> BaseAlgorithm:
        c = self.config
        return TRPO(
            "MlpPolicy",
            venv,
            learning_rate=c.learning_rate,
            n_steps=c.n_steps,
            batch_size=c.batch_size,
            gamma=c.gamma,
            gae_lambda=c.gae_lambda,
            normalize_advantage=c.normalize_advantage,
            target_kl=c.target_kl,
            cg_max_steps=c.cg_max_steps,
            cg_damping=c.cg_damping,
            line_search_shrinking_factor=c.line_search_shrinking_factor,
            line_search_max_iter=c.line_search_max_iter,
            n_critic_updates=c.n_critic_updates,
            sub_sampling_factor=c.sub_sampling_factor,
            policy_kwargs=_on_policy_kwargs(c),
            seed=self.seed,
            device=self.device,
            verbose=0,
        )


class PPOMethod(SB3Method):
    """stable-baselines3 PPO (paper: batch 50k with observation normalisation)."""

    name = "ppo"
    config_class = PPOConfig
    config: PPOConfig

    def _build_model(self, venv: VecEnv) -> BaseAlgorithm:
        c = self.config
        return PPO(
            "MlpPolicy",
            venv,
            learning_rate=c.learning_rate,
            n_steps=c.n_steps,
            batch_size=c.batch_size,
            n_epochs=c.n_epochs,
            gamma=c.gamma,
            gae_lambda=c.gae_lambda,
            clip_range=c.clip_range,
            normalize_advantage=c.normalize_advantage,
            ent_coef=c.ent_coef,
            vf_coef=c.vf_coef,
            max_grad_norm=c.max_grad_norm,
            target_kl=c.target_kl,
            policy_kwargs=_on_policy_kwargs(c),
            seed=self.seed,
            device=self.device,
            verbose=0,
        )


# --------------------------------------------------------------------- off-policy: DDPG


class DDPGMethod(SB3Method):
    """stable-baselines3 DDPG with layer norm and adaptive parameter noise (paper; the latter
    from :mod:`baselines.sb3_param_noise`), or SB3's Gaussian/OU action noise.  Its replay buffer
    (and the parameter-noise std) are checkpointed with the model."""

    name = "ddpg"
    config_class = DDPGConfig
    config: DDPGConfig

    def _action_noise(self) -> ActionNoise | None:
        c = self.config
        if c.exploration_noise in ("none", "param") or c.noise_sigma == 0.0:
            return None
        mean = np.zeros(self.env_spec.act_dim)
        sigma = c.noise_sigma * np.ones(self.env_spec.act_dim)
        if c.exploration_noise == "ou":
            return OrnsteinUhlenbeckActionNoise(mean=mean, sigma=sigma)
        return NormalActionNoise(mean=mean, sigma=sigma)

    def _build_model(self, venv: VecEnv) -> BaseAlgorithm:
        c = self.config
        kwargs: dict[str, Any] = {
            "learning_rate": c.learning_rate,
            "buffer_size": c.buffer_size,
            "learning_starts": c.learning_starts,
            "batch_size": c.batch_size,
            "tau": c.tau,
            "gamma": c.gamma,
            "train_freq": c.train_freq,
            "gradient_steps": c.gradient_steps,
            "action_noise": self._action_noise(),
            "policy_kwargs": {
                "net_arch": {"pi": list(c.policy_hidden), "qf": list(c.critic_hidden)},
                "activation_fn": _ACTIVATION_FNS[c.activation],
            },
            "seed": self.seed,
            "device": self.device,
            "verbose": 0,
        }
        policy = LayerNormTD3Policy if c.layer_norm else "MlpPolicy"
        if c.exploration_noise == "param":
            return ParamNoiseDDPG(
                policy,
                venv,
                param_noise_sigma=c.noise_sigma,
                param_noise_target=c.noise_sigma,
                param_noise_interval=c.param_noise_interval,
                **kwargs,
            )
        return DDPG(policy, venv, **kwargs)

    def _save_extra(self, model: BaseAlgorithm, folder: Path) -> None:
        buf = model.replay_buffer  # type: ignore[attr-defined]
        assert isinstance(buf, ReplayBuffer)
        save_replay_buffer(buf, folder / "replay.npz")
        if isinstance(model, ParamNoiseDDPG):
            atomic_write_json(
                folder / "param_noise.json",
                {"sigma": model.param_noise_sigma, "distance": model.param_noise_distance},
            )

    def _load_extra(self, model: BaseAlgorithm, folder: Path) -> None:
        buf = model.replay_buffer  # type: ignore[attr-defined]
        assert isinstance(buf, ReplayBuffer)
        load_replay_buffer(buf, folder / "replay.npz")
        if isinstance(model, ParamNoiseDDPG):
            with open(folder / "param_noise.json") as fh:
                saved = json.load(fh)
            model.param_noise_sigma = float(saved["sigma"])
            model.param_noise_distance = float(saved["distance"])


_REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_replay_buffer(buf: ReplayBuffer, path: Path) -> None:
    """Save the filled part of ``buf`` (not its whole capacity, unlike SB3's pickle)."""
    n = buf.buffer_size if buf.full else buf.pos
    arrays = {k: getattr(buf, k)[:n] for k in _REPLAY_ARRAYS if getattr(buf, k) is not None}
    with open(path, "wb") as fh:
        np.savez(fh, pos=np.int64(buf.pos), full=np.bool_(buf.full), **arrays)


def load_replay_buffer(buf: ReplayBuffer, path: Path) -> None:
    """Fill ``buf`` (same capacity and shapes) from :func:`save_replay_buffer`'s file."""
    with np.load(path) as data:
        for k in _REPLAY_ARRAYS:
            if k in data:
                saved = data[k]
                getattr(buf, k)[: len(saved)] = saved
        buf.pos = int(data["pos"])
        buf.full = bool(data["full"])
