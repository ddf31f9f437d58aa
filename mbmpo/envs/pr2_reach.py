"""PR2 reach: the PR2's left 7-DoF arm reaching a random 3-D goal (MB-MPO's "PR2" env).

Settings from reference.md §2 (the authors' version): gravity 0, dt 0.05 (timestep 0.01 x
frame_skip 5), torque limits +-3, a goal drawn each episode from
``U([0.4, 0.25, 0.6], [0.6, 0.75, 1.0])`` (world frame, metres).

* observation (17): joint angles (7), joint velocities (7), ``tip - goal`` (3)
* action (7): joint torques in [-3, 3] (the registry rescales them to [-1, 1])
* reward: ``-|tip - goal|^2 - 0.005 |torque / 3|^2``, with tip - goal after the step
* start: joint angles ``INIT_QPOS + U(-0.1, 0.1)``, velocities ``U(-0.1, 0.1)``; no termination

The model (``assets/pr2_reach.xml``) is adapted from gymnasium's Pusher-v5 PR2 arm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from numpy.typing import NDArray

XML_PATH = Path(__file__).parent / "assets" / "pr2_reach.xml"
GOAL_LOW = np.array([0.4, 0.25, 0.6])
"""Lower corner of the goal box (world frame)."""
GOAL_HIGH = np.array([0.6, 0.75, 1.0])
"""Upper corner of the goal box (world frame)."""
TORQUE_LIMIT = 3.0
"""Motor torque limit (the XML's ctrlrange)."""
CTRL_COST = 0.005
"""Weight of ``|torque / TORQUE_LIMIT|^2`` in the reward."""
FRAME_SKIP = 5
INIT_QPOS = np.array([0.5, 0.0, 0.0, -1.0, 0.0, -0.5, 0.0])
"""Mean start pose: arm in front of the shoulder, elbow and wrist bent (inside every joint range)."""
RESET_NOISE = 0.1
"""Half-width of the uniform noise added to the start joint angles and velocities."""


class PR2ReachEnv(MujocoEnv, utils.EzPickle):
    """7-DoF PR2 arm reaching a random goal (see the module docstring)."""

    metadata = {
        "render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"],
        "render_fps": 20,
    }

    def __init__(self, **kwargs: Any) -> None:
        utils.EzPickle.__init__(self, **kwargs)
        observation_space = spaces.Box(-np.inf, np.inf, shape=(17,), dtype=np.float64)
        MujocoEnv.__init__(
            self,
            str(XML_PATH),
            FRAME_SKIP,
            observation_space=observation_space,
            **kwargs,
        )
        self._tip_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "tip")
        self._goal_site_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "goal")
        self.goal = (GOAL_LOW + GOAL_HIGH) / 2.0

    def tip_position(self) -> np.ndarray:
        """World position ``[3]`` of the tip (between the gripper fingers) for the current qpos."""
        return self.data.site_xpos[self._tip_id].copy()

    def _get_obs(self) -> NDArray[np.float64]:
        return np.concatenate(
            [self.data.qpos.flat, self.data.qvel.flat, self.tip_position() - self.goal]
        )

    def step(
        self, action: NDArray[np.floating[Any]]
    ) -> tuple[NDArray[np.float64], np.float64, bool, bool, dict[str, np.float64]]:
        torque = np.asarray(action, dtype=np.float64)
        self.do_simulation(torque, self.frame_skip)
        # mj_step computes positions at the start of its last substep: bring the site positions
        # up to date with the final qpos so the observed tip matches the observed joint angles.
        mujoco.mj_kinematics(self.model, self.data)
        obs = self._get_obs()
        dist_sq = np.float64(np.sum(np.square(obs[14:17])))
        ctrl_cost = np.float64(CTRL_COST * np.sum(np.square(torque / TORQUE_LIMIT)))
        reward = -dist_sq - ctrl_cost
        info = {"reward_dist": -dist_sq, "reward_ctrl": -ctrl_cost, "distance": np.sqrt(dist_sq)}
        if self.render_mode == "human":
            self.render()
        return obs, reward, False, False, info

    def reset_model(self) -> NDArray[np.float64]:
        self.goal = self.np_random.uniform(GOAL_LOW, GOAL_HIGH)
        self.model.site_pos[self._goal_site_id] = self.goal
        qpos = INIT_QPOS + self.np_random.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nq)
        qvel = self.np_random.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nv)
        self.set_state(qpos, qvel)  # runs mj_forward, so site positions are current
        return self._get_obs()
