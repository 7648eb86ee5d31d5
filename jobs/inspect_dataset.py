"""Look at a dataset: a contact-sheet PNG and a printed summary.

    python -m jobs.inspect_dataset data/tworoom --out sheet.png --episodes 6 --frames 8

Rows of the sheet are evenly spaced episodes, columns evenly spaced frames. Bad rows are
skipped (and counted in the summary) rather than fatal, so a damaged dataset can be inspected.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np

from vjepa2.data.contact_sheet import dataset_contact_sheet
from vjepa2.data.dataset import DatasetError, VideoActionDataset


def summarize(ds: VideoActionDataset) -> dict[str, Any]:
    eps = ds.episodes
    frames = np.array([e.num_frames for e in eps], np.int64)
    summary: dict[str, Any] = {
        "root": ds.root,
        "episodes": len(eps),
        "splits": dict(sorted(Counter(e.split or "(none)" for e in eps).items())),
        "frames": int(frames.sum()),
        "frames_per_episode": (int(frames.min()), float(frames.mean()), int(frames.max()))
        if len(eps)
        else None,
        "sizes": sorted({f"{e.height}x{e.width}" for e in eps}),
        "fps": sorted({e.fps for e in eps}),
        "action_dim": ds.action_dim,
        "skipped": ds.skipped.counts,
    }
    actions = [e.actions for e in eps if e.actions is not None and len(e.actions)]
    if actions:
        a = np.concatenate(actions)
        for name, values in (("min", a.min(0)), ("max", a.max(0)), ("mean", a.mean(0))):
            summary[f"action_{name}"] = [round(float(v), 3) for v in values]
    states = [e.states for e in eps if e.states is not None]
    summary["state_dim"] = int(states[0].shape[1]) if states else None
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    width = max(len(k) for k in summary)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in summary.items())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m jobs.inspect_dataset", description=__doc__)
    p.add_argument("root", help="dataset folder (local path or URI)")
    p.add_argument("--out", help="contact sheet PNG to write (none: summary only)")
    p.add_argument("--episodes", type=int, default=6, help="rows of the sheet")
    p.add_argument("--frames", type=int, default=8, help="columns of the sheet")
    p.add_argument("--backend", choices=("pyav", "decord"), default="pyav")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.frames < 1:
        p.error("--episodes and --frames must be >= 1")
    try:
        ds = VideoActionDataset.open(args.root, on_error="skip", backend=args.backend)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}") from None
    summary = summarize(ds)
    print(format_summary(summary))
    if args.out and len(ds):
        from PIL import Image

        sheet = dataset_contact_sheet(
            ds, episodes=args.episodes, frames=args.frames, backend=args.backend
        )
        Image.fromarray(sheet).save(args.out)
        print(f"contact sheet {sheet.shape[1]}x{sheet.shape[0]} -> {args.out}")
    return summary


if __name__ == "__main__":
    main()
