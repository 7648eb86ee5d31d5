"""Parameter counts of the encoder presets and masking statistics, as a table and JSON.

    .venv/bin/python benchmarks/model_stats.py --out runs/model_stats.json

Counts are taken on the meta device (nothing is allocated), so ViT-g costs nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vjepa2.config import MaskConfig
from vjepa2.masks import MultiBlockMaskSampler, mask_statistics
from vjepa2.models import PUBLISHED_PARAMS, VideoViT, encoder_config


def param_counts() -> list[dict]:
    rows = []
    for name in ("vit_l", "vit_h", "vit_g"):
        cfg = encoder_config(name)
        with torch.device("meta"):
            model = VideoViT(cfg)
        n = sum(p.numel() for p in model.parameters())
        rows.append(
            {
                "encoder": name,
                "params": n,
                "published": PUBLISHED_PARAMS[name],
                "ratio": n / PUBLISHED_PARAMS[name],
                "tokens_16x224x224": model.num_patches(),
            }
        )
    return rows


def masking(samples: int) -> list[dict]:
    rows = []
    for scheme, cfg in (("seed", MaskConfig.seed()), ("reference", MaskConfig.reference())):
        for grid in ((8, 14, 14), (4, 4, 4)):
            for batch in (16, 256):
                s = mask_statistics(
                    MultiBlockMaskSampler(cfg, grid), samples, seed=0, batch_size=batch
                )
                rows.append({"scheme": scheme, "grid": grid, "batch": batch, **s})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/model_stats.json")
    parser.add_argument("--samples", type=int, default=1024)
    args = parser.parse_args()
    params, masks = param_counts(), masking(args.samples)
    print("| encoder | params | published | ratio | tokens (16x224x224) |\n|---|---|---|---|---|")
    for r in params:
        print(
            f"| {r['encoder']} | {r['params'] / 1e6:.1f}M | {r['published'] / 1e6:.0f}M | "
            f"{r['ratio']:.4f} | {r['tokens_16x224x224']} |"
        )
    print(
        "\n| masks | grid | batch | per-clip union (mean +- std) | trained on (after "
        "equalising) | context tokens |\n|---|---|---|---|---|---|"
    )
    for r in masks:
        print(
            f"| {r['scheme']} | {'x'.join(map(str, r['grid']))} | {r['batch']} | "
            f"{r['mean_masked_fraction']:.3f} +- {r['std_masked_fraction']:.3f} | "
            f"{r['mean_masked_fraction_batched']:.3f} | {r['mean_context_size_batched']:.1f} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"params": params, "masks": masks}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
