"""Environments that make video-action data: TwoRoom, PushT and any Gymnasium env id.

``make_env(name)`` builds one, ``make_policy(name, env)`` a seeded data-collection policy.
Importing this package imports neither pygame nor gym-pusht; PushT loads them when built.
"""

from vjepa2.envs.generic import GymEnvAdapter
from vjepa2.envs.policies import (
    POLICY_NAMES,
    BlockPushingPolicy,
    DoorSeekingPolicy,
    Policy,
    UniformRandomPolicy,
    make_policy,
)
from vjepa2.envs.pusht import PushT, PushTConfig
from vjepa2.envs.registry import ENV_NAMES, WorldEnv, make_env, replay_frames
from vjepa2.envs.tworoom import TwoRoom, TwoRoomConfig

__all__ = [
    "ENV_NAMES",
    "POLICY_NAMES",
    "BlockPushingPolicy",
    "DoorSeekingPolicy",
    "GymEnvAdapter",
    "Policy",
    "PushT",
    "PushTConfig",
    "TwoRoom",
    "TwoRoomConfig",
    "UniformRandomPolicy",
    "WorldEnv",
    "make_env",
    "make_policy",
    "replay_frames",
]
