"""python -m fastgan evaluate: Table 1's Parzen log-likelihood of a checkpoint, with the sigma curve.
Under `torchrun --nproc-per-node N` the samples are sharded over the N ranks."""
import json
import os
import time
from pathlib import Path

from .common import (add_backend_arg, add_checkpoint_arg, add_data_args, add_progress_arg, checkpoint_data,
                     positive_int, writable_file)

HELP = "Parzen log-likelihood +- SE of a checkpoint (Table 1)"


def add_arguments(parser):
    add_checkpoint_arg(parser)
    parser.add_argument("--samples", type=positive_int,
                        help="generated samples (default: the preset's; the paper 10000)")
    add_backend_arg(parser)
    parser.add_argument("--json", type=Path, help="where to write the result (default parzen.json beside it)")
    add_progress_arg(parser)
    add_data_args(parser)


def _torchrun_group():
    """The default process group when launched by torchrun (WORLD_SIZE > 1), else None."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.group.WORLD


def _print_table(result):
    print(f"{'sigma':>8}  {'valid LL':>9}  {'test LL':>9}  {'SE':>6}")
    for sigma, valid, test, se in zip(result.sigmas, result.valid_mean, result.test_mean, result.test_se):
        mark = "  <- chosen on validation" if sigma == result.sigma else ""
        print(f"{sigma:8.4f}  {valid:9.1f}  {test:9.1f}  {se:6.1f}{mark}")


def _print_agreement(agreement, num_classes):
    per_class = " ".join(f"{100 * a:.0f}" for a in agreement["per_class"])
    print(f"class agreement: {100 * agreement['mean']:.1f}% of {agreement['per_class_samples'] * num_classes} "
          f"samples are classified as the class they were drawn for (chance {100 / num_classes:.0f}%; per class "
          f"{per_class}), by logistic regression on pixels that classifies "
          f"{100 * agreement['classifier_test_accuracy']:.1f}% of the test digits right")


def run(args) -> int:
    from .. import checkpoint
    from ..evaluate import generator_log_likelihood, pixel_class_agreement
    from ..viz import FIGURE_SEED

    state, generator, _ = checkpoint.load_models(args.checkpoint, args.backend)
    output = writable_file(args.json or args.checkpoint.with_name("parzen.json"), "--json")
    group = _torchrun_group()
    leader = group is None or group.rank() == 0
    splits = checkpoint_data(args, state)
    n_samples = args.samples or state["train_config"]["parzen_samples"]
    started = time.perf_counter()
    result = generator_log_likelihood(generator, splits, n_samples, backend=args.backend,
                                      progress=not args.no_progress and leader, group=group)
    seconds = time.perf_counter() - started
    if not leader:
        return 0
    print(f"checkpoint {args.checkpoint}: step {state['step']}, preset {state.get('preset')}")
    _print_table(result)
    print(result.summary() + f" [{seconds:.1f} s]")
    extra = {}
    if generator.num_classes:
        extra["class_agreement"] = pixel_class_agreement(generator, splits, seed=FIGURE_SEED)
        _print_agreement(extra["class_agreement"], generator.num_classes)
    output.write_text(json.dumps(dict(checkpoint=str(args.checkpoint), step=state["step"], data=splits.source,
                                      **result.to_dict(), **extra), indent=2))
    print(f"wrote {output}")
    return 0
