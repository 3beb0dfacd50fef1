"""Command line for fastgan and the paper's experiments.

  python -m fastgan info                                   versions, and which backends run here
  python -m fastgan selftest [--device cuda]               every backend against the float64 reference, here
  python -m fastgan train --preset mnist-quick             train (Algorithm 1), print the Parzen LL, write samples.png
      presets: mnist-quick, mnist-paper, mnist-conv, fashion-mnist-{mlp,conv}, cifar10-{mlp,conv}; --compile
  python -m fastgan evaluate runs/mnist-quick/checkpoint.pt   Parzen LL +- SE with the sigma curve (Table 1)
  python -m fastgan sample CHECKPOINT                      Figure 2: samples beside their nearest training digit
  python -m fastgan interpolate CHECKPOINT                 Figure 3: linear paths in z
  python -m fastgan toy                                    Figure 1: the 1-D game, D against p_data/(p_data+p_g)
Section 7's extensions:
  python -m fastgan train --conditional                    a conditional GAN p(x | c); sample --class C draws digit C
  python -m fastgan reconstruct CHECKPOINT                 fit an encoder z = E(x), write digits beside G(E(x))
  python -m fastgan semisupervised CHECKPOINT              test accuracy of a linear classifier: D's layers vs pixels

Checkpoints load with torch.load(weights_only=True): a file that needs code to load is refused, never run.
A mistake prints one line `error: ...` and exits 2 (usage) or 1 (a bad input file); FASTGAN_DEBUG=1 shows
its traceback.
"""
import argparse
import os
import sys

from . import evaluate, info, interpolate, reconstruct, sample, selftest, semisupervised, toy, train
from .common import EXIT_BAD_INPUT, Parser, UserError

# Each command is a module with HELP, add_arguments(parser) and run(args) -> exit code.
COMMANDS = {"info": info, "train": train, "evaluate": evaluate, "sample": sample, "interpolate": interpolate,
            "reconstruct": reconstruct, "semisupervised": semisupervised, "toy": toy, "selftest": selftest}


def _parser() -> Parser:
    parser = Parser(prog="python -m fastgan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.HELP, description=command.__doc__))
    return parser


def main(argv=None) -> int:
    """Runs one command; a user error (a bad argument, a bad input file) prints one line and returns its code."""
    from ..checkpoint import CheckpointError

    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command].run(args)
    except (UserError, CheckpointError) as err:
        if os.environ.get("FASTGAN_DEBUG", "0") not in ("", "0"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.code if isinstance(err, UserError) else EXIT_BAD_INPUT
