"""Phase 2: action-conditioned latent dynamics on a frozen Phase-1 encoder.

    python -m jobs.train_dynamics --preset tiny \
        --set encoder_checkpoint=runs/tiny/pretrain/checkpoints/step_0000300.pt
"""

from __future__ import annotations

from jobs.cli import config_parser, resolve_config
from vjepa2.config import DynamicsTrainConfig
from vjepa2.train.local import run_dynamics_training


def main(argv: list[str] | None = None) -> None:
    args = config_parser(__doc__).parse_args(argv)
    cfg = resolve_config("dynamics", args, DynamicsTrainConfig)
    result = run_dynamics_training(cfg, resume=not args.no_resume, progress=not args.quiet)
    last = result.history[-1] if result.history else {}
    print(
        f"dynamics: final loss {last.get('loss', float('nan')):.4f}; checkpoint {result.checkpoint}"
    )


if __name__ == "__main__":
    main()
