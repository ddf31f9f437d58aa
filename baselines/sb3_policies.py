"""A DDPG/TD3 policy with LayerNorm in its hidden layers (SB3's own MLPs have no such option).

The paper's DDPG baseline (OpenAI baselines) normalises every hidden layer of actor and critic;
SB3's ``create_mlp`` supports that through ``post_linear_modules`` but its TD3 policy does not pass
them on, so this subclass rebuilds the actor's ``mu`` and the critic's Q networks with them.
Saved models stay loadable with ``DDPG.load`` (the class is importable by its module path).
"""

from __future__ import annotations

from typing import cast

from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, create_mlp
from stable_baselines3.td3.policies import Actor, TD3Policy
from torch import nn


class LayerNormTD3Policy(TD3Policy):
    """``TD3Policy`` whose actor and critic MLPs apply LayerNorm after each hidden linear layer
    (before the activation); output layers are plain linear (+ tanh for the actor)."""

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        actor = super().make_actor(features_extractor)
        layers = create_mlp(
            actor.features_dim,
            get_action_dim(self.action_space),
            list(actor.net_arch),
            actor.activation_fn,
            squash_output=True,
            post_linear_modules=[nn.LayerNorm],
        )
        actor.mu = nn.Sequential(*layers).to(self.device)
        return actor

    def make_critic(
        self, features_extractor: BaseFeaturesExtractor | None = None
    ) -> ContinuousCritic:
        critic = super().make_critic(features_extractor)
        in_dim = critic.features_extractor.features_dim + get_action_dim(self.action_space)
        for idx in range(critic.n_critics):
            q_net = nn.Sequential(
                *create_mlp(
                    in_dim,
                    1,
                    cast(list[int], self.critic_kwargs["net_arch"]),
                    cast(type[nn.Module], self.critic_kwargs["activation_fn"]),
                    post_linear_modules=[nn.LayerNorm],
                )
            ).to(self.device)
            setattr(critic, f"qf{idx}", q_net)
            critic.q_networks[idx] = q_net
        return critic
