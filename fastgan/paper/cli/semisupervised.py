"""python -m fastgan semisupervised: section 7's semi-supervised learning, a linear classifier on D's features."""
import argparse

from .common import (UserError, add_backend_arg, add_checkpoint_arg, add_data_args, add_progress_arg, checkpoint_data,
                     positive_int)

HELP = "test accuracy of a linear classifier on D's features vs on pixels"


def _labelled_count(text):
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of labels or 'all', got {text!r}")
    return int(text)


def add_arguments(parser):
    add_checkpoint_arg(parser)
    parser.add_argument("--labelled", type=_labelled_count, nargs="+", default=[100, 1000, None], metavar="N",
                        help="labelled training digits, each a number or 'all' (default: 100 1000 all)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="random labelled subsets for each N < all")
    add_backend_arg(parser)
    add_progress_arg(parser)
    add_data_args(parser)


def run(args) -> int:
    import torch

    from .. import checkpoint
    from ..data import MNIST_CLASSES
    from ..semisupervised import probe_accuracies

    state, _, discriminator = checkpoint.load_models(args.checkpoint, args.backend)
    if discriminator.num_classes:
        raise UserError(f"{args.checkpoint} is conditional: its D needs the labels the classifier predicts", 1)
    splits = checkpoint_data(args, state)
    n_train = len(splits.train.images)
    if any(n is not None and n > n_train for n in args.labelled):
        raise UserError(f"--labelled must be at most the {n_train} training digits (or 'all')")
    table = probe_accuracies(discriminator, splits, args.labelled, args.repeats, MNIST_CLASSES,
                             progress=not args.no_progress)
    print(f"checkpoint {args.checkpoint}: step {state['step']}, preset {state.get('preset')}")
    print(f"test accuracy of multinomial logistic regression (L-BFGS, L2 weight chosen on the "
          f"{len(splits.valid.images)} validation digits) on {len(splits.test.images)} test digits, on D's hidden "
          f"maxout units (eval mode) or on pixels; mean \u00b1 sd over {args.repeats} random labelled subsets "
          f"where n < all")
    print(f"{'labelled n':>12}" + "".join(f"  {f'{name} ({size})':>16}" for name, (size, _) in table.items()))
    for n in args.labelled:
        cells = []
        for _, by_n in table.values():
            values = torch.tensor(by_n[n], dtype=torch.float64)
            sd = f" \u00b1 {values.std():.1f}" if len(values) > 1 else ""
            cells.append(f"  {f'{values.mean():.1f}{sd}%':>16}")
        print(f"{n or f'{n_train} (all)':>12}" + "".join(cells))
    return 0
