"""Phase 2: action-conditioned latent dynamics on a frozen Phase-1 encoder.

    python -m jobs.train_dynamics --preset tiny \
        --set encoder_checkpoint=runs/tiny/pretrain/final.pt
"""

from __future__ import annotations

from jobs.cli import run_training_job
from vjepa2.config import DynamicsTrainConfig


def main(argv: list[str] | None = None) -> None:
    run_training_job("dynamics", __doc__, DynamicsTrainConfig, argv)


if __name__ == "__main__":
    main()
