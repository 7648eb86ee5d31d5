"""What a CEM setting reaches on the protocol with a perfect model and a perfect energy.

    .venv/bin/python benchmarks/cem_ceiling.py --out runs/bench/cem_ceiling.json
    .venv/bin/python benchmarks/cem_ceiling.py --env pusht --setting 300,5,5,sum \
        --out runs/bench/cem_ceiling_pusht.json

Every candidate is replayed exactly in the environment (``TwoRoom.replay_positions``,
``PushT.replay_poses``) and scored by a distance of its true state to the goal's: on TwoRoom the
squared distance of the agent's position; on PushT the squared distances of the agent's and the
block's positions plus the block's angle error in pixels, at the success criterion's exchange
rate (20 px for 20 degrees). That is the planner's own ceiling, with nothing learned in the loop.
A learned world model under the same settings can only approach it, so a setting that fails here
fails there too. Each ``--setting`` is ``K,I,H,cost`` (candidates, iterations, horizon in plan
steps of ``--frameskip`` env steps, ``final``, ``sum`` or ``min``); the protocol is
``jobs.evaluate``'s (seeds from 1,000,000, goal 25 policy steps ahead, budget 50, success at any
step). Prints a table, writes JSON.

``--energy pixels`` keeps the exact replays but scores them as a latent planner would, by the
mean squared difference of the frames (``--img-size`` px, Gaussian-blurred at each ``--blur``
sigma, the views side by side) to the goal frame: the ceiling of an energy that is the pixels
themselves, which a random encoder's token grid ranks like (``energy_landscape.py``). It tells
whether a state no richer than the frame can plan at all, before anything is trained on it.
On PushT, ``--agent-weight W`` adds the agent's squared position error, as a state carrying
the agent's own position (proprioception) beside the frame would: the pixel energy is
measured in units of a 20 px block move (``energy_landscape.median_changes``) and the agent's
error in units of 20 px, times W; W = 1 weighs the agent as the success criterion does.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_output import print_table, write_json
from energy_landscape import median_changes, moved_poses
from torch import Tensor, nn
from tqdm import tqdm

from vjepa2.data.transforms import gaussian_blur, normalize_frames, resize_square
from vjepa2.envs import make_env
from vjepa2.envs.pusht import PushT, pose_error
from vjepa2.envs.tworoom import TwoRoom
from vjepa2.eval.planning import PlanningEvalConfig
from vjepa2.planning import CEMConfig, make_episode, run_episode, wilson_interval
from vjepa2.planning.cem import CEMPlanner, combine_costs, scored_steps, shift_plan
from vjepa2.planning.episodes import PlanningEpisode
from vjepa2.planning.true_dynamics import TrueDynamicsAgent

DEFAULT_SETTINGS = ["300,5,5,final", "300,10,5,final", "300,5,10,final", "300,10,5,sum",
                    "300,10,10,sum", "1000,10,5,sum",
                    "300,10,8,min", "300,10,10,min"]  # fmt: skip


def true_state(sim: TwoRoom | PushT, snapshot: np.ndarray) -> np.ndarray:
    """The part of a snapshot the energy compares: TwoRoom's position, PushT's pose."""
    return np.asarray(snapshot, np.float64)[: 2 if isinstance(sim, TwoRoom) else 5]


def replay_true_states(
    sim: TwoRoom | PushT, snapshot: np.ndarray, actions: np.ndarray, keep: list[int]
) -> np.ndarray:
    if isinstance(sim, TwoRoom):
        return sim.replay_positions(snapshot, actions, keep)
    return sim.replay_poses(snapshot, actions, keep)


def true_distance(sim: TwoRoom | PushT, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Squared distance [...] of true states [..., D] to a goal [D]."""
    if isinstance(sim, TwoRoom):
        return ((states - goal) ** 2).sum(-1)
    return pose_error(states, goal, sim.config)


class TrueStateCEM(CEMPlanner):
    """States are env snapshots [1, S], goals true states [1, D]."""

    def __init__(self, sim: TwoRoom | PushT, frameskip: int, cfg: CEMConfig) -> None:
        super().__init__(self._no_model, 2 * frameskip, cfg)
        self.sim, self.frameskip = sim, frameskip

    @staticmethod
    def _no_model(state: Tensor, action: Tensor) -> Tensor:
        raise RuntimeError("this planner rolls out in the environment")

    def check_problem(self, state: Tensor, goal: Tensor) -> None:
        pass

    def goal_of(self, episode: PlanningEpisode) -> Tensor:
        """What ``rollout_cost`` compares against: the goal's true state [1, D]."""
        return torch.from_numpy(true_state(self.sim, episode.goal_state))[None]

    def env_actions(self, actions: Tensor) -> tuple[np.ndarray, list[int]]:
        """Plan actions [1, K, H, 2 x frameskip] -> env actions [K, H x frameskip, 2], and the
        env steps that end the plan steps the cost scores."""
        _, k, h, _ = actions.shape
        acts = actions[0].double().numpy().reshape(k, h * self.frameskip, 2)
        return acts, [(t + 1) * self.frameskip - 1 for t in scored_steps(h, self.cfg.cost)]

    def rollout_cost(self, state: Tensor, goal: Tensor, actions: Tensor) -> Tensor:
        acts, env_keep = self.env_actions(actions)
        states = replay_true_states(self.sim, state[0].numpy(), acts, env_keep)  # [K, n, D]
        dist = torch.from_numpy(true_distance(self.sim, states, goal[0].numpy()))  # [K, n]
        return combine_costs(dist, self.cfg.cost)[None].float()


class TrueStateAgent:
    """The ``cem`` agent's MPC (warm start, seeded per episode) on ``TrueStateCEM``."""

    name = "cem_true_state"

    def __init__(self, planner: TrueStateCEM) -> None:
        self.planner = planner
        self._gen = torch.Generator()
        self._snapshot = np.zeros(0)

    def reset(self, episode: PlanningEpisode) -> None:
        self._goal = self.planner.goal_of(episode)
        self._mean: Tensor | None = None
        self._gen.manual_seed(self.planner.cfg.seed * 1_000_003 + episode.seed)

    def observe_state(self, snapshot: np.ndarray) -> None:
        self._snapshot = np.asarray(snapshot, np.float64).copy()

    def act(self, frame: np.ndarray) -> np.ndarray:
        state = torch.from_numpy(self._snapshot)[None]
        result = self.planner.plan(state, self._goal, init_mean=self._mean, generator=self._gen)
        self._mean = shift_plan(result.mean, 1)
        return result.actions[0, :1].numpy()


class PixelState(nn.Module):
    """A ``PlanningModel`` whose state is the normalised frame, blurred at each sigma (px of
    ``img_size``); it has no dynamics, so only ``TrueDynamicsAgent`` can plan with it."""

    def __init__(self, img_size: int, action_dim: int, blur_px: list[float]) -> None:
        super().__init__()
        self.img_size, self.action_dim, self.blur_px = img_size, action_dim, blur_px

    def encode(self, frames: Tensor) -> Tensor:
        return torch.cat([gaussian_blur(frames, s).flatten(1) for s in self.blur_px], 1)

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        raise RuntimeError("pixel states have no dynamics model: replay in the environment")


class PixelPoseCEM(TrueStateCEM):
    """Exact PushT replays scored by the pixel energy (``pixels``' state, over ``unit``, the
    energy of a 20 px block move) plus ``agent_weight`` x the agent's squared error in 20 px.
    Goals are the goal's pose [5] followed by its frame's pixel state, as one row [1, 5 + F]."""

    def __init__(
        self, sim: PushT, frameskip: int, cfg: CEMConfig, pixels: PixelState, unit: float,
        agent_weight: float,
    ) -> None:  # fmt: skip
        super().__init__(sim, frameskip, cfg)
        self.pixels, self.unit, self.agent_weight = pixels, unit, agent_weight

    def encode(self, frames: np.ndarray) -> Tensor:
        x = np.stack([resize_square(f, self.pixels.img_size) for f in frames])
        return self.pixels.encode(normalize_frames(torch.from_numpy(x)))

    def goal_of(self, episode: PlanningEpisode) -> Tensor:
        pose = torch.from_numpy(true_state(self.sim, episode.goal_state)).float()
        return torch.cat([pose, self.encode(episode.goal_frame[None])[0]])[None]

    def rollout_cost(self, state: Tensor, goal: Tensor, actions: Tensor) -> Tensor:
        acts, env_keep = self.env_actions(actions)
        frames, poses = self.sim.replay_frames_and_poses(state[0].numpy(), acts, env_keep)
        z = self.encode(frames.reshape(-1, *frames.shape[2:]))
        pix = (z - goal[0, 5:]).pow(2).mean(1).view(poses.shape[:2]) / self.unit
        px = self.sim.config.success_pos_px
        agent = ((poses[..., :2] - goal[0, :2].numpy()) ** 2).sum(-1) / px**2
        dist = pix.double() + self.agent_weight * torch.from_numpy(agent)
        return combine_costs(dist, self.cfg.cost)[None].float()


def parse_setting(text: str) -> CEMConfig:
    try:
        k, i, h, cost = text.split(",")
        return CEMConfig(num_candidates=int(k), iterations=int(i), horizon=int(h), cost=cost)
    except ValueError as exc:
        raise SystemExit(f"--setting {text!r}: expected K,I,H,final|sum|min ({exc})") from None


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", choices=["tworoom", "pusht"], default="tworoom")
    p.add_argument("--setting", action="append", help="K,I,H,cost (repeatable)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--frameskip", type=int, default=5)
    p.add_argument("--energy", choices=["true", "pixels"], default="true")
    p.add_argument("--blur", type=float, nargs="+", default=[0.0], help="--energy pixels")
    p.add_argument("--img-size", type=int, default=64, help="--energy pixels")
    p.add_argument(
        "--agent-weight", type=float, default=0.0, help="--energy pixels, PushT: agent term"
    )
    p.add_argument("--out", default="runs/bench/cem_ceiling.json")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.frameskip < 1:
        p.error("--episodes and --frameskip must be >= 1")
    if args.img_size < 8 or any(s < 0 for s in args.blur):
        p.error("--img-size must be >= 8 and --blur sigmas >= 0")
    if args.agent_weight < 0 or (
        args.agent_weight and (args.energy, args.env) != ("pixels", "pusht")
    ):
        p.error("--agent-weight is a weight >= 0 for --energy pixels on --env pusht")
    settings = [(s, parse_setting(s)) for s in (args.setting or DEFAULT_SETTINGS)]
    protocol = PlanningEvalConfig(env=args.env)
    env, sim = make_env(args.env), make_env(args.env)  # sim: the planner's private copy
    episodes = [
        make_episode(env, protocol.seed + i, goal_offset=protocol.goal_offset)
        for i in range(args.episodes)
    ]
    env_dim = int(np.prod(sim.action_space.shape))
    pixels = PixelState(args.img_size, env_dim * args.frameskip, args.blur)
    if args.agent_weight:  # the pixel energy of a 20 px block move, once for every setting
        unit = median_changes(pixels.encode, *moved_poses(50, args.img_size, 0))["block_20"]
    rows = []
    for text, cfg in settings:
        if args.energy == "true":
            agent = TrueStateAgent(TrueStateCEM(sim, args.frameskip, cfg))
        elif args.agent_weight:
            planner = PixelPoseCEM(sim, args.frameskip, cfg, pixels, unit, args.agent_weight)
            agent = TrueStateAgent(planner)
        else:
            agent = TrueDynamicsAgent(pixels, cfg, sim)
        t0 = time.perf_counter()
        wins, bar = [], tqdm(episodes, desc=text, unit="episode", leave=False)
        for ep in bar:
            wins.append(run_episode(env, agent, ep, budget=protocol.budget).success)
            bar.set_postfix(success=f"{sum(wins)}/{len(wins)}")
        lo, hi = wilson_interval(sum(wins), len(wins))
        rows.append(
            {"setting": text, "energy": args.energy,
             "blur_px": args.blur if args.energy == "pixels" else None,
             "agent_weight": args.agent_weight,
             "success_rate": float(np.mean(wins)), "ci95": [lo, hi],
             "failed_seeds": [ep.seed for ep, w in zip(episodes, wins, strict=True) if not w],
             "seconds": time.perf_counter() - t0}
        )  # fmt: skip
    energy = "true position" if args.env == "tworoom" else "true pose"
    if args.energy == "pixels":
        energy = f"pixels at {args.img_size} px, blur {', '.join(f'{b:g}' for b in args.blur)}"
        energy += f", agent x {args.agent_weight:g}" if args.agent_weight else ""
    print(f"{args.env}: {args.episodes} protocol episodes, frameskip {args.frameskip}, {energy}")
    print_table(
        ["K, I, H, cost", "success", "95% CI", "failed episodes (seed - 1e6)", "seconds"],
        [
            [r["setting"], f"{r['success_rate']:.0%}", f"{r['ci95'][0]:.0%}-{r['ci95'][1]:.0%}",
             ", ".join(str(s - protocol.seed) for s in r["failed_seeds"]) or "-",
             f"{r['seconds']:.0f}"]
            for r in rows
        ],
    )  # fmt: skip
    write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
