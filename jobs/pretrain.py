"""Phase 1: V-JEPA masked latent prediction.

python -m jobs.pretrain --preset tiny --set train.steps=500
"""

from __future__ import annotations

from jobs.cli import config_parser, resolve_config
from vjepa2.config import PretrainConfig
from vjepa2.train.local import run_pretraining


def main(argv: list[str] | None = None) -> None:
    args = config_parser(__doc__).parse_args(argv)
    cfg = resolve_config("pretrain", args, PretrainConfig)
    result = run_pretraining(cfg, resume=not args.no_resume, progress=not args.quiet)
    last = result.history[-1] if result.history else {}
    print(
        f"pretrain: final loss {last.get('loss', float('nan')):.4f}; checkpoint {result.checkpoint}"
    )


if __name__ == "__main__":
    main()
