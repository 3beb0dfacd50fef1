"""python -m fastgan toy: Figure 1, the 1-D game."""
from pathlib import Path

from .common import add_backend_arg, non_negative_int, writable_file

HELP = "Figure 1: the 1-D game, D against p_data/(p_data+p_g)"


def add_arguments(parser):
    parser.add_argument("--out", type=Path, default=Path("toy.png"))
    parser.add_argument("--seed", type=non_negative_int, default=0)
    add_backend_arg(parser)


def run(args) -> int:
    from ..toy import figure1

    panels = figure1(writable_file(args.out, "--out"), seed=args.seed, backend=args.backend)
    for panel in panels:
        print(f"({panel['label']}) {panel['title']}: JSD(p_data||p_g) = {panel['jsd']:.4f}, "
              f"max |D - D*| = {panel['max_d_error']:.3f}")
    print(f"wrote {args.out}")
    return 0
