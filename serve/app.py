"""Ray Serve planning application: a trained world model behind ``POST /v1/plan``.

    serve run serve.app:build_app checkpoint=runs/demo/dynamics/final.pt
    serve run serve.app:build_app checkpoint=models:/vjepa2-dynamics/1 \
        tracking_uri=sqlite:///$PWD/runs/demo/mlflow.db

``POST /v1/rollout`` rolls a given action sequence out from a frame and reports how close each
predicted latent is to the encoding of target frames (cosine and the planner's energy), for
diagnosing what the planner sees.

Concurrent requests are merged by ``@serve.batch`` into one batched CEM call (the planner
takes several problems at once), so a batch of B requests costs one set of rollouts of
B x K candidates. Inputs are validated at the boundary: undecodable images, wrong sizes or
channels, non-finite arrays, out-of-range planner overrides and oversized payloads get a 4xx
JSON error and the replica stays up. Serve binds 127.0.0.1 unless told otherwise.

A model whose state carries proprioception (``state.proprio_dims``; ``/v1/version`` lists
them) also takes the agent's own readings beside each frame: ``proprio`` and
``goal_proprio`` (plan), ``proprio`` and ``target_proprio`` (rollout), each the true-state
entries ``proprio_dims`` in that order.
"""

import base64
import io
import tempfile
import time
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from ray import serve

from vjepa2.data.transforms import normalize_frames
from vjepa2.eval.rollout import cosine
from vjepa2.model_uri import fetch_checkpoint
from vjepa2.planning import CEMConfig, CEMPlanner
from vjepa2.planning.cem import energy
from vjepa2.train.builders import load_world_model

VERSION = "0.1.0"


class AppArgs(BaseModel):
    """Typed arguments of ``build_app`` (``serve run serve.app:build_app key=value ...``)."""

    checkpoint: str  # a dynamics final.pt, or an MLflow model URI (models:/vjepa2-dynamics/1)
    tracking_uri: str = ""  # resolves a model URI; "" = $MLFLOW_TRACKING_URI
    device: str = "cpu"
    num_candidates: int = 300  # defaults for requests that do not override them
    horizon: int = 5
    iterations: int = 5
    max_candidates: int = 2000  # limits on what a request may ask for
    max_horizon: int = 20
    max_iterations: int = 30
    max_rollout_steps: int = 50
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.005
    max_request_bytes: int = 4 * 2**20
    num_replicas: int = 1
    # Requests a replica takes at once; Serve's default (5) would cap every batch at 5.
    # 0 = twice max_batch_size, so one batch fills while the previous one runs.
    max_ongoing_requests: int = 0


PROPRIO_DOC = "the agent's proprioception beside the frame (models with state.proprio_dims)"


class PlanRequest(BaseModel):
    frame: str | list = Field(description="current frame: base64 PNG/JPEG, or uint8 [H, W, 3]")
    goal: str | list = Field(description="goal frame, same forms")
    proprio: list[float] | None = Field(None, description=PROPRIO_DOC)
    goal_proprio: list[float] | None = Field(None, description="the goal's, likewise")
    num_candidates: int | None = None
    horizon: int | None = None
    iterations: int | None = None
    seed: int = 0


class PlanResponse(BaseModel):
    actions: list[list[float]]  # [H, d_a]
    cost: float
    seconds: float  # server-side, decode + plan
    batch_size: int  # requests merged into the CEM call that served this one


class RolloutRequest(BaseModel):
    frame: str | list = Field(description="start frame: base64 PNG/JPEG, or uint8 [H, W, 3]")
    actions: list[list[float]] = Field(description="actions to roll out, [T, d_a]")
    targets: list[str | list] = Field(
        description="one target frame (every step is compared with it) or T, one per step"
    )
    proprio: list[float] | None = Field(None, description=PROPRIO_DOC)
    target_proprio: list[list[float]] | None = Field(
        None, description="one row per target frame, likewise"
    )


class RolloutResponse(BaseModel):
    cosine: list[float]  # [T]: predicted latent after step t vs the target's latent
    energy: list[float]  # [T]: the planner's L2 energy for the same pairs
    copy_cosine: list[float]  # [T]: the start frame's latent vs the target (no-change baseline)
    seconds: float


api = FastAPI(title="vjepa2 planning", version=VERSION)


def decode_image(value: str | list, size: int, what: str) -> np.ndarray:
    """base64 PNG/JPEG or a nested uint8 list -> uint8 [size, size, 3], or a 4xx."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
            from PIL import Image

            img = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        except Exception as exc:  # PIL raises several types on bad bytes
            raise HTTPException(400, f"{what}: not a base64 PNG/JPEG image ({exc})") from None
    else:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError):
            raise HTTPException(400, f"{what}: not a rectangular numeric array") from None
        if not np.all(np.isfinite(arr)):
            raise HTTPException(400, f"{what}: contains NaN or inf")
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise HTTPException(400, f"{what}: values must lie in [0, 255]")
        img = arr.astype(np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise HTTPException(422, f"{what}: expected [H, W, 3] RGB, got shape {list(img.shape)}")
    if img.shape[:2] != (size, size):
        raise HTTPException(
            422, f"{what}: expected {size}x{size}, got {img.shape[0]}x{img.shape[1]}"
        )
    return img


@serve.deployment
@serve.ingress(api)
class PlannerDeployment:
    def __init__(self, args: dict[str, Any]) -> None:
        self.args = AppArgs(**args)
        self.device = torch.device(self.args.device)
        # A registry model is downloaded, loaded, and its download removed again.
        with tempfile.TemporaryDirectory(prefix="vjepa2-serve-") as tmp:
            path = fetch_checkpoint(self.args.checkpoint, tmp, self.args.tracking_uri)
            self.model, self.cfg = load_world_model(path)
        self.model.eval().to(self.device)
        self.img_size = self.cfg.encoder.img_size
        self.action_dim = self.cfg.dynamics.action_dim
        self.proprio_dims = self.cfg.state.proprio_dims
        self.plan_batch.set_max_batch_size(self.args.max_batch_size)
        self.plan_batch.set_batch_wait_timeout_s(self.args.batch_wait_timeout_s)
        # Warm up before the replica reports healthy: the first forward allocates.
        blank = torch.zeros(1, self.img_size, self.img_size, 3, dtype=torch.uint8)
        still = torch.zeros(1, len(self.proprio_dims)) if self.proprio_dims else None
        z = self._encode(blank, still)
        self._plan(z, z, (8, 2, 1), [0])

    def _encode(self, frames: torch.Tensor, proprio: torch.Tensor | None) -> torch.Tensor:
        x = normalize_frames(frames.to(self.device))
        if proprio is None:
            return self.model.encode(x)
        return self.model.encode(x, proprio.to(self.device))

    def _proprio(self, rows: list | None, count: int, what: str) -> torch.Tensor | None:
        """``count`` readings [count, d_p] as the model needs them, or a 4xx."""
        d = len(self.proprio_dims)
        if not d:
            if rows is not None:
                raise HTTPException(422, f"{what}: this model takes no proprioception")
            return None
        if rows is None:
            raise HTTPException(
                422, f"{what}: this model needs the agent's proprioception (true-state "
                f"entries {list(self.proprio_dims)}) beside each frame",
            )  # fmt: skip
        try:
            arr = np.asarray(rows, dtype=np.float64).reshape(count, d)
        except (ValueError, TypeError):  # ragged, non-numeric, or the wrong count
            raise HTTPException(422, f"{what}: expected {count} x {d} values") from None
        if not np.all(np.isfinite(arr)):
            raise HTTPException(400, f"{what}: contains NaN or inf")
        return torch.from_numpy(arr).float()

    @torch.no_grad()
    def _plan(self, state, goal, khi: tuple[int, int, int], seeds: list[int]):
        k, h, i = khi
        cfg = CEMConfig(num_candidates=k, horizon=h, iterations=i, seed=seeds[0])
        gen = torch.Generator(device=self.device).manual_seed(sum(seeds))
        return CEMPlanner(self.model.step, self.action_dim, cfg).plan(state, goal, generator=gen)

    def _limits(self, req: PlanRequest) -> tuple[int, int, int]:
        a = self.args
        khi = (
            req.num_candidates or a.num_candidates,
            req.horizon or a.horizon,
            req.iterations or a.iterations,
        )
        for name, v, lo, hi in zip(
            ("num_candidates", "horizon", "iterations"),
            khi,
            (2, 1, 1),
            (a.max_candidates, a.max_horizon, a.max_iterations),
            strict=True,
        ):
            if not lo <= v <= hi:
                raise HTTPException(422, f"{name}={v} is outside [{lo}, {hi}]")
        return khi

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def plan_batch(self, items: list[tuple]) -> list[tuple]:
        """Requests with the same (K, H, I) share one CEM call over all their problems."""
        out: list[tuple | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for n, (_, _, khi, _, _) in enumerate(items):
            groups.setdefault(khi, []).append(n)
        for khi, idx in groups.items():
            frames = torch.from_numpy(np.stack([items[n][0] for n in idx]))
            goals = torch.from_numpy(np.stack([items[n][1] for n in idx]))
            here, there = None, None
            if self.proprio_dims:  # each request's (current, goal) readings [2, d_p]
                here = torch.stack([items[n][4][0] for n in idx])
                there = torch.stack([items[n][4][1] for n in idx])
            result = self._plan(
                self._encode(frames, here),
                self._encode(goals, there),
                khi,
                [items[n][3] for n in idx],
            )
            for row, n in enumerate(idx):
                out[n] = (result.actions[row].cpu().tolist(), float(result.cost[row]), len(idx))
        return out  # type: ignore[return-value]

    def _check_size(self, request: Request) -> None:
        # Checked before any image is decoded (the costly part of a request).
        size = request.headers.get("content-length", "0")
        limit = self.args.max_request_bytes
        if not size.isdigit() or int(size) > limit:
            raise HTTPException(413, f"request of {size} bytes exceeds {limit}")

    @api.post("/v1/plan", response_model=PlanResponse)
    async def plan(self, req: PlanRequest, request: Request) -> PlanResponse:
        self._check_size(request)
        t0 = time.perf_counter()
        khi = self._limits(req)
        frame = decode_image(req.frame, self.img_size, "frame")
        goal = decode_image(req.goal, self.img_size, "goal")
        here = self._proprio(req.proprio, 1, "proprio")
        there = self._proprio(req.goal_proprio, 1, "goal_proprio")
        readings = None if here is None else torch.cat([here, there])
        actions, cost, batch = await self.plan_batch((frame, goal, khi, req.seed, readings))
        return PlanResponse(
            actions=actions, cost=cost, seconds=time.perf_counter() - t0, batch_size=batch
        )

    def _rollout_actions(self, actions: list[list[float]]) -> torch.Tensor:
        arr = np.asarray(actions, dtype=np.float64)
        steps, limit = len(actions), self.args.max_rollout_steps
        if arr.ndim != 2 or arr.shape[1] != self.action_dim or not 1 <= steps <= limit:
            raise HTTPException(
                422, f"actions: expected [T, {self.action_dim}] with 1 <= T <= {limit}, "
                f"got shape {list(arr.shape)}",
            )  # fmt: skip
        if not np.all(np.isfinite(arr)):
            raise HTTPException(400, "actions: contain NaN or inf")
        return torch.from_numpy(arr).float().to(self.device)

    @api.post("/v1/rollout", response_model=RolloutResponse)
    async def rollout(self, req: RolloutRequest, request: Request) -> RolloutResponse:
        self._check_size(request)
        t0 = time.perf_counter()
        actions = self._rollout_actions(req.actions)
        steps = actions.shape[0]
        if len(req.targets) not in (1, steps):
            raise HTTPException(
                422, f"targets: expected 1 or {steps} frames, got {len(req.targets)}"
            )
        frame = decode_image(req.frame, self.img_size, "frame")
        targets = [
            decode_image(t, self.img_size, f"targets[{n}]") for n, t in enumerate(req.targets)
        ]
        here = self._proprio(req.proprio, 1, "proprio")
        there = self._proprio(req.target_proprio, len(targets), "target_proprio")
        with torch.no_grad():
            start = self._encode(torch.from_numpy(frame[None]), here)
            goal = self._encode(torch.from_numpy(np.stack(targets)), there)
            goal = goal.expand(steps, *goal.shape[1:]) if len(targets) == 1 else goal
            predicted = self.model.rollout(start, actions[None])[0]  # [T, *S]
            copy = start.expand_as(predicted)
            return RolloutResponse(
                cosine=cosine(predicted, goal).tolist(),
                energy=energy(predicted, goal, "l2").tolist(),
                copy_cosine=cosine(copy, goal).tolist(),
                seconds=time.perf_counter() - t0,
            )

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/version")
    async def version(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "checkpoint": self.args.checkpoint,
            "img_size": self.img_size,
            "action_dim": self.action_dim,
            "state_shape": "pooled" if self.cfg.state.pooled else "token grid",
            "proprio_dims": list(self.proprio_dims),
        }


def build_app(args: dict[str, Any]) -> serve.Application:
    """``serve run serve.app:build_app checkpoint=...``; arguments are checked here."""
    parsed = AppArgs(**args)
    ongoing = parsed.max_ongoing_requests or 2 * parsed.max_batch_size
    return PlannerDeployment.options(
        num_replicas=parsed.num_replicas, max_ongoing_requests=ongoing
    ).bind(parsed.model_dump())
