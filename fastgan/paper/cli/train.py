"""python -m fastgan train: Algorithm 1 on a preset, the Parzen log-likelihood before and after, samples.png."""
from pathlib import Path

from .common import (EXIT_INTERRUPTED, UserError, add_backend_arg, add_data_args, add_progress_arg, data_source,
                     load_data, non_negative_int, positive_float, positive_int, writable_dir)

HELP = "train the paper's MNIST GAN with Algorithm 1"


def add_arguments(parser):
    from ..schedule import OPTIMIZERS
    from ..train import PRESETS

    parser.add_argument("--preset", choices=sorted(PRESETS), default="mnist-quick")
    add_backend_arg(parser)
    parser.add_argument("--steps", type=positive_int, help="total generator steps (default: the preset's)")
    parser.add_argument("--minutes", type=positive_float, help="stop after this much wall time (whichever comes first)")
    parser.add_argument("--out", type=Path, help="run directory (default runs/<preset>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoint.pt with its own settings (options given here override them)")
    parser.add_argument("--saturating", action="store_true", help="G minimises log(1 - D(G(z))) (the minimax loss)")
    parser.add_argument("--conditional", action="store_true",
                        help="a conditional GAN p(x | c): the digit's class is an input of both G and D")
    parser.add_argument("--k", type=positive_int, help="discriminator steps per generator step (default 1)")
    parser.add_argument("--lr", type=positive_float, help="initial learning rate (default: the preset's)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS,
                        help="SGD with momentum (the paper's), or Adam with beta1 = the momentum (mnist-conv's)")
    parser.add_argument("--seed", type=non_negative_int)
    parser.add_argument("--checkpoint-every", type=positive_int, help="steps between checkpoints")
    parser.add_argument("--parzen-samples", type=positive_int, help="generated samples for the Parzen estimate")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile both losses over the fused ops (one graph each; compiling takes ~30 s)")
    add_progress_arg(parser)
    add_data_args(parser)


def _resume_state(args, checkpoint_path):
    """(state, (ModelConfig, TrainConfig)) of the checkpoint to resume, (None, None) for a new run, after the
    checks that keep a run from being lost."""
    from .. import checkpoint

    if not args.resume:
        if checkpoint_path.exists():
            raise UserError(f"--out {checkpoint_path.parent}: a run is already there ({checkpoint_path}); pass "
                            "--resume to continue it, or choose another --out")
        return None, None
    if not checkpoint_path.exists():
        raise UserError(f"--resume: nothing to resume, {checkpoint_path} does not exist (train without --resume "
                        "first, or give the run's --out)")
    state = checkpoint.load(checkpoint_path, "gan")
    model_config, train_config = checkpoint.configs(state, checkpoint_path)
    if args.conditional and not model_config.num_classes:
        raise UserError(f"--conditional: {checkpoint_path} is an unconditional run, --conditional cannot change "
                        "its nets")
    if args.optimizer not in (None, train_config.optimizer):
        raise UserError(f"--optimizer: {checkpoint_path} was trained with {train_config.optimizer}: --optimizer "
                        "cannot change it (the optimizer's state would not fit)")
    return state, (model_config, train_config)


def run(args) -> int:
    from .. import runs
    from ..train import CHECKPOINT_NAME, TrainingDiverged

    out = writable_dir(args.out or Path("runs") / args.preset, "--out")
    state, resumed = _resume_state(args, out / CHECKPOINT_NAME)
    overrides = {name: getattr(args, name) for name in ("k", "lr", "optimizer", "seed", "checkpoint_every",
                                                        "parzen_samples") if getattr(args, name) is not None}
    if args.saturating:
        overrides["saturating"] = True
    model_config, train_config = runs.settings(args.preset, resumed, args.conditional, overrides)
    source = data_source(args, state)
    splits = load_data(train_config.dataset, source, args.cache_dir, model_config if state else None,
                       out / CHECKPOINT_NAME)
    preset = state.get("preset", args.preset) if state is not None else args.preset
    try:
        status = runs.train_run(out, preset, model_config, train_config, splits, source, state, args.backend,
                                args.compile, args.steps, args.minutes, progress=not args.no_progress)
    except TrainingDiverged as err:
        raise UserError(str(err), 1) from None
    return EXIT_INTERRUPTED if status == "interrupted" else 0
