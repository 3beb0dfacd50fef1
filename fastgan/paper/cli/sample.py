"""python -m fastgan sample: Figure 2, samples beside their nearest training digit."""
from pathlib import Path

from .common import (UserError, add_checkpoint_arg, add_data_args, checkpoint_data, non_negative_int, positive_int,
                     writable_file)

HELP = "Figure 2: samples, the nearest training digit in the last column"


def add_arguments(parser):
    from ..viz import FIGURE_SEED

    add_checkpoint_arg(parser)
    parser.add_argument("--out", type=Path, default=Path("samples.png"))
    parser.add_argument("--rows", type=positive_int, default=10)
    parser.add_argument("--cols", type=positive_int, default=6)
    parser.add_argument("--seed", type=non_negative_int, default=FIGURE_SEED)
    parser.add_argument("--class", dest="label", type=non_negative_int,
                        help="draw this digit (conditional checkpoints; without it, they give one row per class)")
    add_data_args(parser)


def run(args) -> int:
    from .. import checkpoint
    from ..viz import generator_samples_figure

    state, generator, _ = checkpoint.load_models(args.checkpoint, "torch")
    out = writable_file(args.out, "--out")
    if args.label is not None and not generator.num_classes:
        raise UserError("--class needs a conditional checkpoint (train --conditional); this one is not")
    if args.label is not None and args.label >= generator.num_classes:
        raise UserError(f"--class must be in 0..{generator.num_classes - 1}, got {args.label}")
    splits = checkpoint_data(args, state)
    figure = generator_samples_figure(generator, splits.train.images, out, args.rows, args.cols, args.seed, args.label,
                                      generator.image_shape)
    print(f"wrote {figure}")
    return 0
