"""Gaussian blur of a batch of frames: the matmul operators against a depthwise convolution.

    .venv/bin/python benchmarks/blur.py --out runs/bench/blur.json

A blurred-state world model blurs every frame it encodes: each training window, and every
candidate frame ``cem_true_dynamics`` scores (K x H per CEM iteration with a summed cost).
This times ``vjepa2.data.transforms.gaussian_blur`` (one [n, n] matmul per axis) against the
separable depthwise convolution with replicated edges it replaced, on ``--batch`` random
64 x 64 RGB frames, one thread, median of ``--repeats`` runs each, checks that the two agree,
and prints the ratio per sigma.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from bench_output import print_table, write_json

from vjepa2.data.transforms import gaussian_blur


def conv_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """The reference: a (2r+1)-tap kernel per axis, r = 3 sigma, edges replicated."""
    c, r = images.shape[1], max(1, int(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(images, (r, r, 0, 0), mode="replicate"), k, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.mT, groups=c)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1500, help="300 candidates x 5 steps")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--sigmas", type=float, nargs="+", default=[4.0, 8.0, 16.0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="runs/bench/blur.json")
    args = p.parse_args(argv)
    if min(args.batch, args.size, args.repeats) < 1 or min(args.sigmas) <= 0:
        p.error("--batch, --size, --repeats must be >= 1 and --sigmas > 0")
    torch.set_num_threads(1)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    rows = []
    for sigma in args.sigmas:
        err = float((gaussian_blur(x, sigma) - conv_blur(x, sigma)).abs().max())
        if err > 1e-4:
            raise SystemExit(f"sigma {sigma}: the two blurs differ by {err}")
        fast = median_seconds(lambda s=sigma: gaussian_blur(x, s), args.repeats)
        slow = median_seconds(lambda s=sigma: conv_blur(x, s), args.repeats)
        rows.append(
            {"sigma": sigma, "batch": args.batch, "size": args.size, "matmul_s": fast,
             "conv_s": slow, "speedup": slow / fast, "max_abs_diff": err}
        )  # fmt: skip
    print_table(
        ["sigma (px)", "frames", "matmul (median)", "depthwise conv (median)", "speed-up"],
        [
            [f"{r['sigma']:g}", f"{r['batch']} x {r['size']}^2", f"{r['matmul_s'] * 1e3:.0f} ms",
             f"{r['conv_s'] * 1e3:.0f} ms", f"{r['speedup']:.0f}x"]
            for r in rows
        ],
    )  # fmt: skip
    write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
