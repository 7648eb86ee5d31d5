"""Contact sheets: a grid of frames (rows = episodes, columns = evenly spaced time steps).

The sheet is built as a numpy array (testable, savable with PIL); labels are drawn with PIL's
built-in font. Small frames are enlarged by an integer factor (nearest neighbour, so pixels
stay crisp) until they are at least ``min_cell`` px wide and the labels fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vjepa2.data.dataset import VideoActionDataset
from vjepa2.data.video import Backend

_BG = (32, 32, 32)
_TEXT = (235, 235, 235)
_PAD = 4
_LINE = 14  # px per text line


def frame_indices(num_frames: int, columns: int) -> list[int]:
    """``columns`` evenly spaced indices from first to last frame (fewer for short videos)."""
    if num_frames < 1 or columns < 1:
        raise ValueError("need at least one frame and one column")
    return sorted({int(i) for i in np.linspace(0, num_frames - 1, columns).round()})


def pick_rows(num_episodes: int, rows: int) -> list[int]:
    """``rows`` evenly spaced episode positions, first and last included."""
    return frame_indices(num_episodes, rows)


def contact_sheet(
    rows: Sequence[np.ndarray],
    row_labels: Sequence[str],
    col_labels: Sequence[Sequence[str]],
    *,
    min_cell: int = 96,
    label_width: int = 110,
) -> np.ndarray:
    """One uint8 [H, W, 3] image: ``rows[r]`` is [K_r, h, w, 3] frames, labelled at the left by
    ``row_labels[r]`` and under each frame by ``col_labels[r][k]``."""
    from PIL import Image, ImageDraw

    if not rows or len(rows) != len(row_labels) or len(rows) != len(col_labels):
        raise ValueError("need one row label and one list of column labels per row")
    h = max(r.shape[1] for r in rows)
    w = max(r.shape[2] for r in rows)
    scale = max(1, -(-min_cell // w))
    cell_w, cell_h = w * scale, h * scale + _LINE
    ncols = max(len(r) for r in rows)
    width = label_width + ncols * (cell_w + _PAD) + _PAD
    height = len(rows) * (cell_h + _PAD) + _PAD
    sheet = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(sheet)
    for r, (frames, label, labels) in enumerate(zip(rows, row_labels, col_labels, strict=True)):
        if len(labels) != len(frames):
            raise ValueError(f"row {r}: {len(frames)} frames but {len(labels)} labels")
        y = _PAD + r * (cell_h + _PAD)
        for i, line in enumerate(label.split("\n")):
            draw.text((_PAD, y + cell_h // 2 - _LINE + i * _LINE), line, fill=_TEXT)
        for c, (frame, text) in enumerate(zip(frames, labels, strict=True)):
            x = label_width + _PAD + c * (cell_w + _PAD)
            big = np.repeat(np.repeat(np.asarray(frame, np.uint8), scale, 0), scale, 1)
            sheet.paste(Image.fromarray(big), (x, y))
            draw.text((x + 2, y + h * scale + 1), text, fill=_TEXT)
    return np.asarray(sheet)


def dataset_contact_sheet(
    ds: VideoActionDataset,
    *,
    episodes: int = 6,
    frames: int = 8,
    backend: Backend = "pyav",
    min_cell: int = 96,
) -> np.ndarray:
    """Contact sheet of ``episodes`` evenly spaced episodes of ``ds``, ``frames`` frames each."""
    if not len(ds):
        raise ValueError(f"{ds.root}: no episodes to show")
    rows, row_labels, col_labels = [], [], []
    for pos in pick_rows(len(ds), episodes):
        ep = ds[pos]
        with ds.open_video(ep, backend) as reader:
            idx = frame_indices(reader.num_frames, frames)
            rows.append(reader.get_frames(idx))
        row_labels.append(f"{ep.episode_id}\n{ep.split or ''} T={ep.num_frames}")
        col_labels.append([f"t={i}" for i in idx])
    return contact_sheet(rows, row_labels, col_labels, min_cell=min_cell)
