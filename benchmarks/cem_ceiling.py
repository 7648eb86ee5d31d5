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
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_output import print_table, write_json
from torch import Tensor
from tqdm import tqdm

from vjepa2.envs import make_env
from vjepa2.envs.pusht import PushT, pose_error
from vjepa2.envs.tworoom import TwoRoom
from vjepa2.eval.planning import PlanningEvalConfig
from vjepa2.planning import CEMConfig, make_episode, run_episode, wilson_interval
from vjepa2.planning.cem import CEMPlanner, combine_costs, scored_steps, shift_plan
from vjepa2.planning.episodes import PlanningEpisode

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

    def rollout_cost(self, state: Tensor, goal: Tensor, actions: Tensor) -> Tensor:
        _, k, h, _ = actions.shape
        keep = scored_steps(h, self.cfg.cost)
        acts = actions[0].double().numpy().reshape(k, h * self.frameskip, 2)
        env_keep = [(t + 1) * self.frameskip - 1 for t in keep]
        states = replay_true_states(self.sim, state[0].numpy(), acts, env_keep)  # [K, n, D]
        dist = torch.from_numpy(true_distance(self.sim, states, goal[0].numpy()))  # [K, n]
        return combine_costs(dist, self.cfg.cost)[None].float()


class TrueStateAgent:
    """The ``cem`` agent's MPC (warm start, seeded per episode) on ``TrueStateCEM``."""

    name = "cem_true_state"

    def __init__(self, sim: TwoRoom | PushT, cfg: CEMConfig, frameskip: int) -> None:
        self.planner = TrueStateCEM(sim, frameskip, cfg)
        self._gen = torch.Generator()
        self._snapshot = np.zeros(0)

    def reset(self, episode: PlanningEpisode) -> None:
        goal = true_state(self.planner.sim, episode.goal_state)
        self._goal = torch.from_numpy(goal)[None]
        self._mean: Tensor | None = None
        self._gen.manual_seed(self.planner.cfg.seed * 1_000_003 + episode.seed)

    def observe_state(self, snapshot: np.ndarray) -> None:
        self._snapshot = np.asarray(snapshot, np.float64).copy()

    def act(self, frame: np.ndarray) -> np.ndarray:
        state = torch.from_numpy(self._snapshot)[None]
        result = self.planner.plan(state, self._goal, init_mean=self._mean, generator=self._gen)
        self._mean = shift_plan(result.mean, 1)
        return result.actions[0, :1].numpy()


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
    p.add_argument("--out", default="runs/bench/cem_ceiling.json")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.frameskip < 1:
        p.error("--episodes and --frameskip must be >= 1")
    settings = [(s, parse_setting(s)) for s in (args.setting or DEFAULT_SETTINGS)]
    protocol = PlanningEvalConfig(env=args.env)
    env, sim = make_env(args.env), make_env(args.env)  # sim: the planner's private copy
    episodes = [
        make_episode(env, protocol.seed + i, goal_offset=protocol.goal_offset)
        for i in range(args.episodes)
    ]
    rows = []
    for text, cfg in settings:
        agent, t0 = TrueStateAgent(sim, cfg, args.frameskip), time.perf_counter()
        wins, bar = [], tqdm(episodes, desc=text, unit="episode", leave=False)
        for ep in bar:
            wins.append(run_episode(env, agent, ep, budget=protocol.budget).success)
            bar.set_postfix(success=f"{sum(wins)}/{len(wins)}")
        lo, hi = wilson_interval(sum(wins), len(wins))
        rows.append(
            {"setting": text, "success_rate": float(np.mean(wins)), "ci95": [lo, hi],
             "failed_seeds": [ep.seed for ep, w in zip(episodes, wins, strict=True) if not w],
             "seconds": time.perf_counter() - t0}
        )  # fmt: skip
    energy = "true position" if args.env == "tworoom" else "true pose"
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
