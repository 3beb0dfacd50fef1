"""python -m fastgan interpolate: Figure 3, linear paths in z."""
from pathlib import Path

from .common import add_checkpoint_arg, int_at_least, non_negative_int, positive_int, writable_file

HELP = "Figure 3: linear interpolation in z"


def add_arguments(parser):
    from ..viz import FIGURE_SEED

    add_checkpoint_arg(parser)
    parser.add_argument("--out", type=Path, default=Path("interpolation.png"))
    parser.add_argument("--rows", type=positive_int, default=6)
    parser.add_argument("--steps", type=int_at_least(2), default=10, help="images along each path, ends included")
    parser.add_argument("--seed", type=non_negative_int, default=FIGURE_SEED)


def run(args) -> int:
    from .. import checkpoint
    from ..viz import interpolation_figure

    _, generator, _ = checkpoint.load_models(args.checkpoint, "torch")
    out = writable_file(args.out, "--out")
    figure = interpolation_figure(generator, out, rows=args.rows, steps=args.steps, seed=args.seed,
                                  image_shape=generator.image_shape)
    print(f"wrote {figure}")
    return 0
