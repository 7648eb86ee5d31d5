"""Training throughput of either phase: samples/s, model FLOPs per step, TFLOP/s and MFU.

    .venv/bin/python benchmarks/train_throughput.py --out runs/bench/train_throughput.json
    python benchmarks/train_throughput.py --pretrain-preset vit_l --dynamics-preset vit_h \
        --device cuda --precision bf16 --set train.batch_size=16       # on a GPU

Each phase is built from its preset exactly as the training jobs build it (``build_task``:
the model, AdamW, autocast, the EMA target encoder in Phase 1, a randomly initialised frozen
encoder in Phase 2) and fed synthetic moving-shape clips at the preset's frame size, so no
dataset is needed (a Phase-2 preset's actions are the synthetic ones, 2-d per step). After
``--warmup`` steps it times ``--steps`` more, each synchronised with the device, and reports
their median. One further step runs under ``FlopCounterMode``: the forward and backward
passes' matmuls, convolutions and attention, two FLOPs per multiply-add (the optimizer's and
the EMA's elementwise work is not counted, as in the usual model-FLOPs convention). MFU is
the achieved rate over the device's dense peak at that precision: known for A100, H100 and
H200 in bf16 (``PEAK_TFLOPS``); ``--peak-tflops`` sets it for any other device, a CPU
included.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from bench_output import print_table, write_json
from planner import sync
from torch.utils.flop_counter import FlopCounterMode

from vjepa2.config import apply_overrides, get_preset
from vjepa2.train.loop import (
    InMemoryBatches,
    TrainTask,
    amp_dtype_for,
    build_task,
    peak_memory_mb,
    resolve_device,
)

# Dense bf16 tensor-core peaks (TFLOP/s) of the SXM parts, from the vendors' data sheets; a
# PCIe card's is lower (H100 PCIe: 756), so pass --peak-tflops there.
PEAK_TFLOPS = {"A100": 312.0, "H100": 989.0, "H200": 989.0}
SYNTHETIC_ACTION_DIM = 2  # vjepa2.data.synthetic.moving_shapes steers one shape in x, y


def peak_tflops(device: torch.device, amp: torch.dtype | None) -> float | None:
    """The device's dense peak for the step's precision, when it is one we know."""
    if device.type != "cuda" or amp != torch.bfloat16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)


def run_step(task: TrainTask, source: InMemoryBatches, step: int, gen: torch.Generator) -> float:
    """One training step, as the loop runs it, in synchronised seconds."""
    batch = source.batch(step)
    sync(task.device)
    t0 = time.perf_counter()
    # Phase 1's masks (and so its FLOPs) depend on the draw: seeded by step, the counted step
    # masks the same tokens at any batch size and in every run.
    gen.manual_seed(step)
    task.step_fn(batch, step, gen)
    sync(task.device)
    return time.perf_counter() - t0


def measure(
    job: str, preset: str, overrides: list[str], steps: int, warmup: int, peak: float | None
) -> dict[str, Any]:
    cfg = apply_overrides(get_preset(job, preset), overrides)
    # Synthetic clips, as many as one batch, so a large preset's frames fit beside the model.
    cfg.data.source = "synthetic"
    cfg.data.synthetic.num_videos = max(cfg.train.batch_size, 2)
    cfg.train.steps = warmup + steps + 1  # the lr schedule's length; it does not change cost
    if job == "dynamics":
        # Synthetic windows carry one 2-d action per step; a frameskip-k preset's k x 2 only
        # widens the action encoder's first layer, a rounding error in the step's FLOPs.
        cfg.dynamics.action_dim = SYNTHETIC_ACTION_DIM
    device = resolve_device(cfg.train.device)
    task = build_task(cfg, device)
    task.model.train()
    source = InMemoryBatches(task, cfg.train.batch_size)
    gen = torch.Generator(device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = [run_step(task, source, i, gen) for i in range(warmup + steps)][warmup:]
    counter = FlopCounterMode(display=False)
    with counter:
        run_step(task, source, warmup + steps, gen)
    flops = int(counter.get_total_flops())
    median = statistics.median(times)
    amp = amp_dtype_for(cfg.train.precision, device)
    peak = peak if peak is not None else peak_tflops(device, amp)
    achieved = flops / median / 1e12
    trainable = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
    return {
        "phase": task.kind,
        "preset": preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "precision": "bf16" if amp == torch.bfloat16 else "fp32",
        "batch_size": cfg.train.batch_size,
        "params": sum(p.numel() for p in task.model.parameters()),
        "trainable_params": trainable,
        "flops_per_step": flops,
        "step_s_median": median,
        "step_s_all": times,
        "samples_per_s": cfg.train.batch_size / median,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "mfu": None if peak is None else achieved / peak,
        "peak_memory_mb": peak_memory_mb(device),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pretrain-preset", default="tiny", help="a Phase-1 preset, or 'none'")
    p.add_argument("--dynamics-preset", default="tiny", help="a Phase-2 preset, or 'none'")
    p.add_argument("--device", default="auto", help="train.device: auto, cpu, cuda, cuda:1")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=10, help="timed steps (after the warm-up)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, help="the device's peak, for MFU")
    p.add_argument("--out", default="runs/bench/train_throughput.json")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        p.error("--peak-tflops must be > 0")
    phases = [
        (job, preset)
        for job, preset in (("pretrain", args.pretrain_preset), ("dynamics", args.dynamics_preset))
        if preset != "none"
    ]
    if not phases:
        p.error("nothing to measure: both presets are 'none'")
    overrides = [f"train.device={args.device}", f"train.precision={args.precision}"]
    rows = []
    for job, preset in phases:
        row = measure(
            job, preset, [*overrides, *args.overrides], args.steps, args.warmup, args.peak_tflops
        )
        rows.append(row)
        print(f"{job} {preset}: {row['step_s_median'] * 1e3:.1f} ms/step", flush=True)
    print()
    print_table(
        ["phase", "preset", "device", "precision", "batch", "params (trainable)",
         "GFLOPs / step", "step (median)", "samples/s", "TFLOP/s", "MFU", "peak memory"],
        [
            [
                r["phase"], r["preset"], f"{r['device']} ({r['threads']} threads)",
                r["precision"], str(r["batch_size"]),
                f"{r['params'] / 1e6:.1f}M ({r['trainable_params'] / 1e6:.1f}M)",
                f"{r['flops_per_step'] / 1e9:.2f}", f"{r['step_s_median'] * 1e3:.1f} ms",
                f"{r['samples_per_s']:.1f}", f"{r['achieved_tflops']:.3f}",
                "-" if r["mfu"] is None else f"{r['mfu']:.1%}",
                f"{r['peak_memory_mb']:.0f} MB",
            ]
            for r in rows
        ],
    )  # fmt: skip
    print(f"\nwrote {write_json(args.out, rows)}")
    return rows


if __name__ == "__main__":
    main()
