"""Frozen configs of the stable-baselines3 baselines (TRPO, PPO, DDPG).

Defaults follow the paper where it says something (reference.md section 4: TRPO batch 50k with KL
0.01; PPO batch 50k with observation normalisation; DDPG with layer norm and parameter noise; all policies (32, 32)
tanh) and stable-baselines3 / sb3-contrib elsewhere.  The per-method default files
``suites/hyperparams/<method>.yaml`` repeat these values with comments; a manifest overrides them
(e.g. a smaller ``n_steps`` and ``batch_size`` for smoke runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.common import check_field_types

ACTIVATIONS = ("tanh", "relu")
"""Allowed values of ``activation``."""
EXPLORATION_NOISES = ("param", "normal", "ou", "none")
"""Allowed values of ``DDPGConfig.exploration_noise``."""


def _positive(where: str, **values: float) -> None:
    for name, v in values.items():
        if not v > 0:
            raise ValueError(f"{where}: {name} must be > 0, got {v!r}")


def _in_unit(where: str, closed_low: bool = False, **values: float) -> None:
    for name, v in values.items():
        if not ((0.0 <= v <= 1.0) if closed_low else (0.0 < v <= 1.0)):
            raise ValueError(
                f"{where}: {name} must be in {'[0' if closed_low else '(0'}, 1], got {v!r}"
            )


@dataclass(frozen=True)
class SB3Config:
    """Settings shared by every SB3 baseline."""

    learning_rate: float = 3e-4
    """Adam step size (constant; schedules are not supported because training runs in chunks)."""
    gamma: float = 0.99
    """Discount factor (paper: 0.99)."""
    policy_hidden: tuple[int, ...] = (32, 32)
    """Hidden layer sizes of the policy (actor) MLP (paper: (32, 32))."""
    activation: str = "tanh"
    """Hidden activation of every network: one of ``ACTIVATIONS`` (paper: tanh)."""
    normalize_obs: bool = False
    """Normalise observations with running statistics (SB3 ``VecNormalize``, rewards untouched)."""
    n_envs: int = 1
    """Training envs stepped in lock-step (``DummyVecEnv``); env i is seeded from ``seed + i``."""

    def __post_init__(self) -> None:
        where = f"{type(self).__name__}"
        check_field_types(self, where)
        _positive(where, learning_rate=self.learning_rate, n_envs=self.n_envs)
        _in_unit(where, gamma=self.gamma)
        if not self.policy_hidden or any(h <= 0 for h in self.policy_hidden):
            raise ValueError(
                f"{where}: policy_hidden must be positive sizes, got {self.policy_hidden}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"{where}: activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}"
            )


@dataclass(frozen=True)
class OnPolicyConfig(SB3Config):
    """Settings shared by TRPO and PPO (actor-critic with a Gaussian policy)."""

    n_steps: int = 50_000
    """Env steps per env per policy update; the batch is ``n_steps * n_envs`` (paper: 50k)."""
    batch_size: int = 1_000
    """Minibatch size of the SGD passes (PPO: policy and value; TRPO: value function only)."""
    gae_lambda: float = 0.95
    """GAE lambda (SB3 default; the paper does not state it for the model-free baselines)."""
    value_hidden: tuple[int, ...] = (64, 64)
    """Hidden sizes of the value MLP (SB3's default; the paper only fixes the policy)."""
    log_std_init: float = 0.0
    """Initial log std of the state-independent Gaussian (0.0: std 1, as in the paper)."""
    normalize_advantage: bool = True
    """Standardise advantages per batch."""

    def __post_init__(self) -> None:
        super().__post_init__()
        where = f"{type(self).__name__}"
        _positive(where, n_steps=self.n_steps, batch_size=self.batch_size)
        _in_unit(where, closed_low=True, gae_lambda=self.gae_lambda)
        if not self.value_hidden or any(h <= 0 for h in self.value_hidden):
            raise ValueError(
                f"{where}: value_hidden must be positive sizes, got {self.value_hidden}"
            )
        if self.batch_size > self.n_steps * self.n_envs:
            raise ValueError(
                f"{where}: batch_size ({self.batch_size}) must be <= n_steps * n_envs "
                f"({self.n_steps} * {self.n_envs}); shrink batch_size together with n_steps"
            )
        if self.batch_size < 2:
            raise ValueError(f"{where}: batch_size must be >= 2, got {self.batch_size}")


@dataclass(frozen=True)
class TRPOConfig(OnPolicyConfig):
    """sb3-contrib TRPO. ``learning_rate`` is the value function's Adam step (the policy step is
    set by the KL bound)."""

    learning_rate: float = 1e-3
    """Adam step size of the value function (sb3-contrib default)."""
    batch_size: int = 125
    """Minibatch size of the value-function updates (sb3-contrib: 128, which does not divide the
    50k batch and makes SB3 warn)."""
    target_kl: float = 0.01
    """KL bound of each policy step (paper: 0.01)."""
    cg_max_steps: int = 10
    """Conjugate-gradient iterations (rllab's 10, as in the authors' code; sb3-contrib: 15)."""
    cg_damping: float = 0.1
    """Damping of the Fisher-vector products (sb3-contrib default; rllab used 1e-5)."""
    line_search_shrinking_factor: float = 0.8
    """Backtracking factor of the line search (paper/rllab: 0.8)."""
    line_search_max_iter: int = 15
    """Line-search backtracks (rllab: 15; sb3-contrib: 10)."""
    n_critic_updates: int = 10
    """Value-function epochs per batch (sb3-contrib default)."""
    sub_sampling_factor: int = 1
    """Use every k-th sample for the Fisher-vector products (1: all)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        where = f"{type(self).__name__}"
        _positive(
            where,
            target_kl=self.target_kl,
            cg_max_steps=self.cg_max_steps,
            cg_damping=self.cg_damping,
            line_search_max_iter=self.line_search_max_iter,
            n_critic_updates=self.n_critic_updates,
            sub_sampling_factor=self.sub_sampling_factor,
        )
        if not 0.0 < self.line_search_shrinking_factor < 1.0:
            raise ValueError(
                f"{where}: line_search_shrinking_factor must be in (0, 1), "
                f"got {self.line_search_shrinking_factor}"
            )


@dataclass(frozen=True)
class PPOConfig(OnPolicyConfig):
    """stable-baselines3 PPO (clipped surrogate)."""

    normalize_obs: bool = True
    """Observation normalisation (paper: PPO with obs normalisation)."""
    n_epochs: int = 10
    """SGD passes over each batch (SB3 default)."""
    clip_range: float = 0.2
    """PPO ratio clip (SB3 default)."""
    ent_coef: float = 0.0
    """Entropy bonus weight (SB3 default)."""
    vf_coef: float = 0.5
    """Value loss weight (SB3 default)."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip (SB3 default)."""
    target_kl: float | None = None
    """Stop the epochs of a batch early once the approximate KL exceeds 1.5x this (None: never)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        where = f"{type(self).__name__}"
        _positive(
            where,
            n_epochs=self.n_epochs,
            clip_range=self.clip_range,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
        )
        if self.ent_coef < 0:
            raise ValueError(f"{where}: ent_coef must be >= 0, got {self.ent_coef}")
        if self.target_kl is not None:
            _positive(where, target_kl=self.target_kl)


@dataclass(frozen=True)
class DDPGConfig(SB3Config):
    """stable-baselines3 DDPG (deterministic actor, one Q critic, target networks)."""

    learning_rate: float = 1e-3
    """Adam step of actor and critic (SB3 uses one for both; OpenAI baselines: 1e-4 / 1e-3)."""
    critic_hidden: tuple[int, ...] = (64, 64)
    """Hidden sizes of the Q network (OpenAI baselines' DDPG: (64, 64); SB3: (400, 300))."""
    layer_norm: bool = True
    """LayerNorm after every hidden linear layer of actor and critic (paper: layer norm)."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity in transitions."""
    learning_starts: int = 100
    """Uniform random actions (and no updates) for this many initial env steps (SB3 default)."""
    batch_size: int = 256
    """Replay minibatch size (SB3 default)."""
    tau: float = 0.005
    """Polyak factor of the target networks (SB3 default)."""
    train_freq: int = 1
    """Env steps (per env) between updates."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    exploration_noise: str = "param"
    """Exploration: one of ``EXPLORATION_NOISES``.  ``param``: adaptive parameter-space noise
    (Plappert et al. 2018), as in the paper's DDPG (OpenAI baselines ``adaptive-param_0.2``; SB3
    lacks it, see ``baselines.sb3_param_noise``); ``normal`` / ``ou``: Gaussian /
    Ornstein-Uhlenbeck noise added to the action (SB3's own options)."""
    noise_sigma: float = 0.2
    """``param``: initial weight-noise std and the target action distance (both 0.2 in the paper's
    runs); ``normal`` / ``ou``: std of the action noise (SB3 examples use 0.1)."""
    param_noise_interval: int = 50
    """``param``: env steps between adaptations of the weight-noise std (OpenAI baselines: 50)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        where = f"{type(self).__name__}"
        _positive(
            where,
            buffer_size=self.buffer_size,
            batch_size=self.batch_size,
            train_freq=self.train_freq,
            gradient_steps=self.gradient_steps,
        )
        _in_unit(where, tau=self.tau)
        if self.learning_starts < 0:
            raise ValueError(f"{where}: learning_starts must be >= 0, got {self.learning_starts}")
        if not self.critic_hidden or any(h <= 0 for h in self.critic_hidden):
            raise ValueError(
                f"{where}: critic_hidden must be positive sizes, got {self.critic_hidden}"
            )
        if self.exploration_noise not in EXPLORATION_NOISES:
            raise ValueError(
                f"{where}: exploration_noise must be one of {list(EXPLORATION_NOISES)}, "
                f"got {self.exploration_noise!r}"
            )
        if self.noise_sigma < 0 or (self.exploration_noise == "param" and self.noise_sigma == 0):
            raise ValueError(
                f"{where}: noise_sigma must be >= 0 (> 0 for param noise), got {self.noise_sigma}"
            )
        _positive(where, param_noise_interval=self.param_noise_interval)
