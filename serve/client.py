"""Closed-loop client: drive TwoRoom through the planning service, one plan per step.

    python -m serve.client --url http://127.0.0.1:8000 --episodes 5 --budget 50

Each step sends the current frame and the goal frame to ``POST /v1/plan`` and executes the
first returned action (receding horizon), until the environment reports success or the
budget runs out.
"""

import argparse
import base64
import io

import numpy as np
import requests

from vjepa2.envs import make_env
from vjepa2.planning import make_episode, wilson_interval


def png(frame: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(frame, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def drive(url: str, seed: int, budget: int, goal_offset: int = 25, timeout: float = 60) -> dict:
    env = make_env("tworoom")
    episode = make_episode(env, seed, goal_offset=goal_offset)
    frame, info = env.reset(options={"state": episode.start_state})
    goal = png(episode.goal_frame)
    latencies = []
    for step in range(1, budget + 1):
        r = requests.post(
            f"{url}/v1/plan",
            json={"frame": png(frame), "goal": goal, "seed": step},
            timeout=timeout,
        )
        r.raise_for_status()
        body = r.json()
        latencies.append(body["seconds"])
        frame, _, _, _, info = env.step(np.asarray(body["actions"][0], np.float32))
        if env.is_success(info, episode.goal_info):
            return {"seed": seed, "success": True, "steps": step, "latencies": latencies}
    return {"seed": seed, "success": False, "steps": budget, "latencies": latencies}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--budget", type=int, default=50)
    p.add_argument("--seed", type=int, default=1_000_000)
    args = p.parse_args(argv)
    results = [drive(args.url, args.seed + i, args.budget) for i in range(args.episodes)]
    wins = sum(r["success"] for r in results)
    lo, hi = wilson_interval(wins, len(results))
    lat = np.concatenate([r["latencies"] for r in results])
    print(
        f"success {wins}/{len(results)} (95% CI {lo:.0%}-{hi:.0%}); server plan time "
        f"median {np.median(lat) * 1e3:.0f} ms over {len(lat)} requests"
    )
    return results


if __name__ == "__main__":
    main()
