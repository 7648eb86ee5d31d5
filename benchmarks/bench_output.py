"""What every benchmark ends with: a markdown table on stdout and the figures as JSON.

Benchmarks run as scripts (``python benchmarks/<name>.py``), so this folder is on the path
and they import this module by its bare name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def print_table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def write_json(path: str | Path, payload: Any) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    return out
