"""DDPG with adaptive parameter-space noise (Plappert et al., ICLR 2018), which SB3 lacks.

The paper's DDPG baseline (OpenAI baselines, ``adaptive-param_0.2``) explores by acting with a
copy of the actor whose weights carry Gaussian noise of std ``sigma``, drawn afresh at the start
of every episode; LayerNorm gains and biases are not perturbed.  ``sigma`` adapts so that the
perturbed policy's actions stay about ``target_distance`` away from the unperturbed ones:
every ``interval`` env steps a second, independently perturbed copy is compared with the actor
on a replay minibatch, distance ``d = sqrt(mean((mu(s) - mu~(s))^2))`` over actions in [-1, 1],
and ``sigma`` is divided by 1.01 when ``d > target_distance``, else multiplied by 1.01.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3 import DDPG
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.td3.policies import Actor
from torch import nn

_ADAPT_FACTOR = 1.01


class ParamNoiseDDPG(DDPG):
    """``DDPG`` exploring with adaptive parameter noise (on top of any ``action_noise``).

    :param param_noise_sigma: initial std of the weight noise.
    :param param_noise_target: desired action-space distance between perturbed and plain actor.
    :param param_noise_interval: env steps (per env) between two adaptations of the std.
    """

    def __init__(
        self,
        *args: Any,
        param_noise_sigma: float = 0.2,
        param_noise_target: float = 0.2,
        param_noise_interval: int = 50,
        **kwargs: Any,
    ) -> None:
        if param_noise_sigma <= 0 or param_noise_target <= 0 or param_noise_interval <= 0:
            raise ValueError(
                "ParamNoiseDDPG: param_noise_sigma, param_noise_target and param_noise_interval "
                f"must be > 0, got {param_noise_sigma}, {param_noise_target}, {param_noise_interval}"
            )
        self.param_noise_sigma = float(param_noise_sigma)
        self.param_noise_target = float(param_noise_target)
        self.param_noise_interval = int(param_noise_interval)
        self.param_noise_distance = float("nan")
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self._perturbed_actor = self._make_copy()
        self._adapt_actor = self._make_copy()

    def _make_copy(self) -> Actor:
        actor = self.policy.make_actor(features_extractor=None)
        actor.set_training_mode(False)
        for p in actor.parameters():
            p.requires_grad_(False)
        return actor

    def _excluded_save_params(self) -> list[str]:
        # rebuilt by _setup_model and re-perturbed at the start of every learn() call
        return [*super()._excluded_save_params(), "_perturbed_actor", "_adapt_actor"]

    def perturb(self, target: nn.Module, sigma: float) -> None:
        """Set ``target``'s weights to the actor's plus N(0, sigma^2) (LayerNorm params exempt)."""
        exempt = {
            id(p) for m in target.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()
        }
        with torch.no_grad():
            for p, src in zip(target.parameters(), self.actor.parameters(), strict=True):
                p.copy_(src)
                if id(p) not in exempt:
                    p.add_(torch.randn_like(p) * sigma)

    def adapt(self) -> None:
        """One adaptation of ``param_noise_sigma`` on a replay minibatch (see the module doc)."""
        batch = self.replay_buffer.sample(self.batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
        self.perturb(self._adapt_actor, self.param_noise_sigma)
        with torch.no_grad():
            diff = self.actor(batch.observations) - self._adapt_actor(batch.observations)
            distance = float(torch.sqrt(torch.mean(diff**2)))
        self.param_noise_distance = distance
        if distance > self.param_noise_target:
            self.param_noise_sigma /= _ADAPT_FACTOR
        else:
            self.param_noise_sigma *= _ADAPT_FACTOR
        self.logger.record("train/param_noise_sigma", self.param_noise_sigma)
        self.logger.record("train/param_noise_distance", distance)

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        out = super()._setup_learn(*args, **kwargs)
        self.perturb(self._perturbed_actor, self.param_noise_sigma)
        return out

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        obs, _ = self.policy.obs_to_tensor(self._last_obs)  # type: ignore[arg-type]
        with torch.no_grad():
            scaled_action = self._perturbed_actor(obs).cpu().numpy()  # [n_envs, act] in [-1, 1]
        if action_noise is not None:
            scaled_action = np.clip(scaled_action + action_noise(), -1, 1)
        return self.policy.unscale_action(scaled_action), scaled_action

    def _store_transition(
        self,
        replay_buffer: Any,
        buffer_action: Any,
        new_obs: Any,
        reward: Any,
        dones: np.ndarray,
        infos: Any,
    ) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        if np.any(dones):  # a new episode: a new perturbation (one shared by all envs)
            self.perturb(self._perturbed_actor, self.param_noise_sigma)

    def _on_step(self) -> None:
        super()._on_step()
        steps = self.num_timesteps // self.n_envs
        if (
            self.num_timesteps >= self.learning_starts
            and steps % self.param_noise_interval == 0
            and self.replay_buffer is not None
            and self.replay_buffer.size() > 0
        ):
            self.adapt()
