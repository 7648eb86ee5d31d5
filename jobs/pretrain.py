"""Phase 1: V-JEPA masked latent prediction.

python -m jobs.pretrain --preset tiny --set train.steps=500
"""

from __future__ import annotations

from jobs.cli import run_training_job
from vjepa2.config import PretrainConfig


def main(argv: list[str] | None = None) -> None:
    run_training_job("pretrain", __doc__, PretrainConfig, argv)


if __name__ == "__main__":
    main()
