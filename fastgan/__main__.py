"""Command line for fastgan and the paper's experiments.

  python -m fastgan info                                   versions, and which backends run here
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
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

# Seeds for evaluation noise, apart from training's RNG, so evaluating never changes a resumed run.
PARZEN_SEED = 1234
FIGURE_SEED = 4321


def _checkpoint_data_source(args, state):
    """--data-dir / --download when given, else the data the checkpoint was trained on."""
    if args.data_dir or args.download or state is None:
        return _data_source(args)
    return state.get("data_source", "offline")


def _data_source(args):
    """A directory, "download", or None: the data set's default (MNIST: the offline subset)."""
    if args.data_dir and args.download:
        raise SystemExit("error: give --data-dir or --download, not both")
    return str(args.data_dir) if args.data_dir else ("download" if args.download else None)


def _add_data_args(parser):
    group = parser.add_argument_group("data (default: the offline 5k MNIST subset shipped with fastgan; "
                                      "Fashion-MNIST from the Debian package dataset-fashion-mnist)")
    group.add_argument("--data-dir", type=Path,
                       help="a directory with the data set's files (MNIST/Fashion-MNIST IDX files, CIFAR-10 batches)")
    group.add_argument("--download", action="store_true", help="download the data set (SHA-256 checked) into the cache")
    group.add_argument("--cache-dir", type=Path, help="where --download stores it (default ~/.cache/fastgan)")


def _load_data(dataset, source, cache_dir=None):
    from .data import load_dataset

    splits = load_dataset(dataset, source, cache_dir=cache_dir).splits
    print(f"data: {splits.source}")
    return splits


def _checkpoint_data(args, state):
    """The splits a checkpoint was trained on (or --data-dir / --download's)."""
    dataset = state["train_config"].get("dataset", "mnist")  # checkpoints before other data sets: MNIST
    return _load_data(dataset, _checkpoint_data_source(args, state), args.cache_dir)


def _parzen(generator, splits, n_samples, backend, progress=True, group=None):
    """The Parzen protocol on n_samples from G. With a torch.distributed group, every rank draws the same
    samples (one seed) and keeps its contiguous share as Parzen centres: the result equals one process's."""
    import torch

    from .evaluate import parzen_log_likelihood

    generator.eval()
    with torch.no_grad():
        samples = generator.sample(n_samples, generator=torch.Generator().manual_seed(PARZEN_SEED))
    generator.train()
    if group is not None:
        rank, world = torch.distributed.get_rank(group), torch.distributed.get_world_size(group)
        samples = samples[rank * n_samples // world:(rank + 1) * n_samples // world]
    return parzen_log_likelihood(samples, splits.valid.images, splits.test.images, progress=progress, backend=backend,
                                 group=group)


def _torchrun_group():
    """The default process group when launched by torchrun (WORLD_SIZE > 1), else None."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.group.WORLD


def _load_checkpoint(path, backend):
    from .train import Trainer, models_from_checkpoint

    state = Trainer.load_checkpoint(path)
    generator, discriminator = models_from_checkpoint(state, backend)
    return state, generator, discriminator


def cmd_train(args):
    import torch

    from .data import MNIST_CLASSES
    from .models import ModelConfig, build_models
    from .train import CHECKPOINT_NAME, PRESETS, TrainConfig, Trainer, TrainingDiverged

    out = args.out or Path("runs") / args.preset
    checkpoint = out / CHECKPOINT_NAME
    if checkpoint.exists() and not args.resume:
        raise SystemExit(f"error: {checkpoint} exists: pass --resume to continue it, or choose another --out")
    state = Trainer.load_checkpoint(checkpoint) if args.resume and checkpoint.exists() else None
    if state is not None:  # the run's own settings, not the preset's, unless overridden below
        model_config = ModelConfig.from_dict(state["model_config"])
        train_config = TrainConfig(**state["train_config"])
        if args.conditional and not model_config.num_classes:
            raise SystemExit(f"error: {checkpoint} is an unconditional run: --conditional cannot change its nets")
        if args.optimizer not in (None, train_config.optimizer):
            raise SystemExit(f"error: {checkpoint} was trained with {train_config.optimizer}: --optimizer cannot "
                             "change it (the optimizer's state would not fit)")
    else:
        model_config, train_config = PRESETS[args.preset]
        if args.conditional:
            model_config = dataclasses.replace(model_config, num_classes=MNIST_CLASSES)
    overrides = {name: getattr(args, name) for name in ("k", "lr", "optimizer", "seed", "checkpoint_every",
                                                        "parzen_samples")
                 if getattr(args, name) is not None}
    if args.saturating:
        overrides["saturating"] = True
    train_config = dataclasses.replace(train_config, **overrides)
    if args.steps is None and args.minutes is None:
        steps, minutes = train_config.steps, train_config.minutes
    else:
        steps, minutes = args.steps, args.minutes
    source = _checkpoint_data_source(args, state)
    splits = _load_data(train_config.dataset, source, args.cache_dir)
    torch.manual_seed(train_config.seed)
    generator, discriminator = build_models(model_config, splits.train.images.mean(0), backend=args.backend)
    preset = state.get("preset", args.preset) if state is not None else args.preset
    extra = dict(preset=preset, model_config=model_config.to_dict(), data_source=source)
    trainer = Trainer(generator, discriminator, splits.train.images, train_config, out_dir=out, extra_state=extra,
                      train_labels=splits.train.labels if model_config.num_classes else None, compile=args.compile)
    results_path = out / "results.json"
    if state is not None:
        trainer.load_state_dict(state)
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        print(f"resumed {checkpoint} at step {trainer.step}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        print(f"Parzen log-likelihood of the test digits under the untrained generator "
              f"({train_config.parzen_samples} samples):")
        untrained = _parzen(generator, splits, train_config.parzen_samples, args.backend, progress=not args.no_progress)
        print(f"  untrained: {untrained.summary()}")
        results = dict(preset=args.preset, data=splits.source, backend=args.backend, untrained=untrained.to_dict())
    budget = " or ".join(([f"{steps} steps"] if steps is not None else [])
                         + ([f"{minutes:g} minutes"] if minutes else []))
    conditional = f"conditional on {model_config.num_classes} classes, " if model_config.num_classes else ""
    print(f"training {args.preset} ({conditional}{budget}, backend {args.backend}, k={train_config.k}, "
          f"{'saturating' if train_config.saturating else 'non-saturating'} G loss) -> {out}")
    try:
        status = trainer.run(steps=steps, minutes=minutes, progress=not args.no_progress)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{status} after {trainer.step} steps ({trainer.epoch} epochs, {trainer.elapsed:.0f} s of training)")
    trained = _parzen(generator, splits, train_config.parzen_samples, args.backend, progress=not args.no_progress)
    if "untrained" in results:
        print(f"  untrained: {_result_line(results['untrained'])}")
    print(f"  trained:   {trained.summary()}")
    figure = _samples_png(generator, splits, out / "samples.png", rows=10, cols=6, seed=FIGURE_SEED,
                          image_shape=model_config.image_shape)
    results.update(trained=trained.to_dict(), steps=trainer.step, train_seconds=round(trainer.elapsed, 1))
    results_path.write_text(json.dumps(results, indent=2))
    print(f"wrote {figure}, {results_path}, {checkpoint}, {out / 'metrics.jsonl'}")
    return 130 if status == "interrupted" else 0


def _result_line(result):
    return (f"Parzen log-likelihood {result['mean']:.1f} \u00b1 {result['se']:.1f} (sigma = {result['sigma']:.4g}; "
            f"{result['n_test']} test points, {result['n_samples']} samples)")


def cmd_evaluate(args):
    """Parzen LL of a checkpoint; under `torchrun --nproc-per-node N` the samples are sharded over N ranks."""
    group = _torchrun_group()
    leader = group is None or group.rank() == 0
    state, generator, _ = _load_checkpoint(args.checkpoint, args.backend)
    splits = _checkpoint_data(args, state)
    n_samples = args.samples or state["train_config"]["parzen_samples"]
    started = time.perf_counter()
    result = _parzen(generator, splits, n_samples, args.backend, progress=not args.no_progress and leader,
                     group=group)
    seconds = time.perf_counter() - started
    if not leader:
        return 0
    print(f"checkpoint {args.checkpoint}: step {state['step']}, preset {state.get('preset')}")
    print(f"{'sigma':>8}  {'valid LL':>9}  {'test LL':>9}  {'SE':>6}")
    for sigma, valid, test, se in zip(result.sigmas, result.valid_mean, result.test_mean, result.test_se):
        mark = "  <- chosen on validation" if sigma == result.sigma else ""
        print(f"{sigma:8.4f}  {valid:9.1f}  {test:9.1f}  {se:6.1f}{mark}")
    print(result.summary() + f" [{seconds:.1f} s]")
    extra = {}
    if generator.num_classes:
        extra["class_agreement"] = _class_agreement(generator, splits)
    output = args.json or Path(args.checkpoint).with_name("parzen.json")
    output.write_text(json.dumps(dict(checkpoint=str(args.checkpoint), step=state["step"], data=splits.source,
                                      **result.to_dict(), **extra), indent=2))
    print(f"wrote {output}")
    return 0


def _class_agreement(generator, splits, per_class=100):
    """Prints and returns how often logistic regression on pixels names the class each sample was drawn for."""
    from .evaluate import class_agreement
    from .semisupervised import accuracy, fit_logistic_regression

    classifier = fit_logistic_regression(splits.train.images, splits.train.labels, generator.num_classes)
    test_accuracy = accuracy(classifier, splits.test.images, splits.test.labels)
    agreement = class_agreement(generator, lambda x: classifier(x.double()), per_class, seed=FIGURE_SEED)
    print(f"class agreement: {100 * agreement.mean():.1f}% of {per_class * generator.num_classes} samples are "
          f"classified as the class they were drawn for (chance {100 / generator.num_classes:.0f}%; per class "
          f"{' '.join(f'{100 * a:.0f}' for a in agreement.tolist())}), by logistic regression on pixels that "
          f"classifies {100 * test_accuracy:.1f}% of the test digits right")
    return dict(mean=agreement.mean().item(), per_class=agreement.tolist(), classifier_test_accuracy=test_accuracy)


def _image_shape(state):
    from .models import ModelConfig

    return ModelConfig.from_dict(state["model_config"]).image_shape


def _samples_png(generator, splits, path, rows, cols, seed, label=None, image_shape=(1, 28, 28)):
    """Figure 2's grid: rows x cols samples, or a conditional generator's one row of cols per class, or all of
    class `label`; each row's nearest training digit on the right."""
    import torch

    from .viz import samples_figure

    if label is not None and not generator.num_classes:
        raise SystemExit("error: --class needs a conditional checkpoint (train --conditional); this one is not")
    if label is not None and not 0 <= label < generator.num_classes:
        raise SystemExit(f"error: --class must be in 0..{generator.num_classes - 1}, got {label}")
    if label is not None:
        labels = torch.full((rows * cols,), label)
    elif generator.num_classes:
        labels = torch.arange(generator.num_classes).repeat_interleave(cols)
    else:
        labels = None
    generator.eval()
    with torch.no_grad():
        samples = generator.sample(rows * cols if labels is None else len(labels),
                                   generator=torch.Generator().manual_seed(seed), labels=labels)
    generator.train()
    return samples_figure(samples, splits.train.images, path, cols=cols, image_shape=image_shape)


def cmd_sample(args):
    state, generator, _ = _load_checkpoint(args.checkpoint, "torch")
    splits = _checkpoint_data(args, state)
    figure = _samples_png(generator, splits, args.out, args.rows, args.cols, args.seed, args.label, _image_shape(state))
    print(f"wrote {figure}")
    return 0


def cmd_interpolate(args):
    from .viz import interpolation_figure

    state, generator, _ = _load_checkpoint(args.checkpoint, "torch")
    figure = interpolation_figure(generator, args.out, rows=args.rows, steps=args.steps, seed=args.seed,
                                  image_shape=_image_shape(state))
    print(f"wrote {figure}")
    return 0


def cmd_reconstruct(args):
    import torch

    from .inference import Encoder, fit_encoder, latent_error
    from .train import save_atomic
    from .viz import reconstruction_figure

    if args.steps < 1 or args.rows < 1:
        raise SystemExit(f"error: --steps and --rows must be >= 1, got {args.steps} and {args.rows}")
    state, generator, _ = _load_checkpoint(args.checkpoint, "torch")
    splits = _checkpoint_data(args, state)
    torch.manual_seed(args.seed)
    encoder = Encoder(generator.data_dim, generator.noise_dim)
    print(f"fitting an encoder z = E(x) to the generator of {args.checkpoint} (step {state['step']}): "
          f"{args.steps} steps on fresh (G(z), z) pairs")
    untrained = latent_error(encoder, generator, seed=args.seed + 1)
    fit_encoder(encoder, generator, args.steps, seed=args.seed, progress=not args.no_progress)
    trained = latent_error(encoder, generator, seed=args.seed + 1)
    print(f"latent error |E(G(z)) - z|^2 per dimension on 1000 fresh pairs: {untrained:.3f} untrained, "
          f"{trained:.3f} trained (predicting z = 0 scores 1)")
    encoder_path = Path(args.checkpoint).with_name("encoder.pt")
    save_atomic(dict(encoder=encoder.state_dict(), encoder_config=encoder.config(), steps=args.steps,
                     checkpoint=str(args.checkpoint), checkpoint_step=state["step"]), encoder_path)
    test = splits.test
    generator.eval()
    encoder.eval()
    with torch.no_grad():
        reconstructions = generator(encoder(test.images), test.labels if generator.num_classes else None)
    error = (reconstructions - test.images).square().mean().item()
    baseline = (splits.train.images.mean(0) - test.images).square().mean().item()
    print(f"reconstruction error |G(E(x)) - x|^2 per pixel on the {len(test.images)} test digits: {error:.4f} "
          f"(the mean training digit scores {baseline:.4f})")
    out = args.out or Path(args.checkpoint).with_name("reconstructions.png")
    figure = reconstruction_figure(test.images[:args.rows * 6], reconstructions[:args.rows * 6], out,
                                   image_shape=_image_shape(state))
    print(f"wrote {figure} (each test digit, then G(E(x))), {encoder_path}")
    return 0


def _labelled_count(text):
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of labels or 'all', got {text!r}")
    return int(text)


def cmd_semisupervised(args):
    import torch
    from tqdm.auto import tqdm

    from .data import MNIST_CLASSES, Split
    from .semisupervised import discriminator_features, linear_probe

    if args.repeats < 1:
        raise SystemExit(f"error: --repeats must be >= 1, got {args.repeats}")
    state, _, discriminator = _load_checkpoint(args.checkpoint, args.backend)
    if discriminator.num_classes:
        raise SystemExit("error: the checkpoint is conditional: its D needs the labels the classifier predicts")
    splits = _checkpoint_data(args, state)
    n_train = len(splits.train.images)
    if any(n is not None and n > n_train for n in args.labelled):
        raise SystemExit(f"error: --labelled must be at most the {n_train} training digits (or 'all')")
    features = [discriminator_features(discriminator, split.images) for split in splits[:3]]  # [split][layer]
    inputs = {f"D layer {i + 1}": [Split(layers[i], split.labels) for layers, split in zip(features, splits[:3])]
              for i in range(len(discriminator.hidden))}
    inputs["pixels"] = list(splits[:3])
    runs = [(n, seed) for n in args.labelled for seed in range(1 if n is None else args.repeats)]
    accuracies = {}
    for n, seed in tqdm(runs, disable=args.no_progress, unit="subset", desc="fitting"):
        for name, (train, valid, test) in inputs.items():
            result = linear_probe(train, valid, test, n, seed=seed, num_classes=MNIST_CLASSES)
            accuracies.setdefault((n, name), []).append(100 * result.accuracy)
    print(f"checkpoint {args.checkpoint}: step {state['step']}, preset {state.get('preset')}")
    print(f"test accuracy of multinomial logistic regression (L-BFGS, L2 weight chosen on the "
          f"{len(splits.valid.images)} validation digits) on {len(splits.test.images)} test digits, on D's hidden "
          f"maxout units (eval mode) or on pixels; mean \u00b1 sd over {args.repeats} random labelled subsets "
          f"where n < all")
    print(f"{'labelled n':>12}" + "".join(f"  {f'{name} ({train.images.shape[1]})':>16}"
                                          for name, (train, _, _) in inputs.items()))
    for n in args.labelled:
        cells = []
        for name in inputs:
            values = torch.tensor(accuracies[(n, name)], dtype=torch.float64)
            sd = f" \u00b1 {values.std():.1f}" if len(values) > 1 else ""
            cells.append(f"  {f'{values.mean():.1f}{sd}%':>16}")
        print(f"{n or f'{n_train} (all)':>12}" + "".join(cells))
    return 0


def cmd_toy(args):
    from .toy import figure1

    panels = figure1(args.out, seed=args.seed, backend=args.backend)
    for panel in panels:
        print(f"({panel['label']}) {panel['title']}: JSD(p_data||p_g) = {panel['jsd']:.4f}, "
              f"max |D - D*| = {panel['max_d_error']:.3f}")
    print(f"wrote {args.out}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastgan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, and which backends are available and why not")

    from .train import OPTIMIZERS, PRESETS

    backends = ["auto", "cuda", "triton", "cpu", "torch"]
    train = sub.add_parser("train", help="train the paper's MNIST GAN with Algorithm 1")
    train.add_argument("--preset", choices=sorted(PRESETS), default="mnist-quick")
    train.add_argument("--backend", choices=backends, default="auto",
                       help="fused kernels (auto) or the pure-PyTorch reference (torch) for the same nets")
    train.add_argument("--steps", type=int, help="total generator steps (default: the preset's)")
    train.add_argument("--minutes", type=float, help="stop after this much wall time (whichever comes first)")
    train.add_argument("--out", type=Path, help="run directory (default runs/<preset>)")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint.pt with its own settings (options given here override them)")
    train.add_argument("--saturating", action="store_true", help="G minimises log(1 - D(G(z))) (the minimax loss)")
    train.add_argument("--conditional", action="store_true",
                       help="a conditional GAN p(x | c): the digit's class is an input of both G and D")
    train.add_argument("--k", type=int, help="discriminator steps per generator step (default 1)")
    train.add_argument("--lr", type=float, help="initial learning rate (default: the preset's)")
    train.add_argument("--optimizer", choices=OPTIMIZERS,
                       help="SGD with momentum (the paper's), or Adam with beta1 = the momentum (mnist-conv's)")
    train.add_argument("--seed", type=int)
    train.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    train.add_argument("--parzen-samples", type=int, help="generated samples for the Parzen estimate")
    train.add_argument("--compile", action="store_true",
                       help="torch.compile both losses over the fused ops (one graph each; compiling takes ~30 s)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_data_args(train)

    evaluate = sub.add_parser("evaluate", help="Parzen log-likelihood +- SE of a checkpoint (Table 1)")
    evaluate.add_argument("checkpoint", type=Path)
    evaluate.add_argument("--samples", type=int, help="generated samples (default: the preset's; the paper 10000)")
    evaluate.add_argument("--backend", choices=backends, default="auto")
    evaluate.add_argument("--json", type=Path, help="where to write the result (default parzen.json beside it)")
    evaluate.add_argument("--no-progress", action="store_true")
    _add_data_args(evaluate)

    sample = sub.add_parser("sample", help="Figure 2: samples, the nearest training digit in the last column")
    sample.add_argument("checkpoint", type=Path)
    sample.add_argument("--out", type=Path, default=Path("samples.png"))
    sample.add_argument("--rows", type=int, default=10)
    sample.add_argument("--cols", type=int, default=6)
    sample.add_argument("--seed", type=int, default=FIGURE_SEED)
    sample.add_argument("--class", dest="label", type=int,
                        help="draw this digit (conditional checkpoints; without it, they give one row per class)")
    _add_data_args(sample)

    interpolate = sub.add_parser("interpolate", help="Figure 3: linear interpolation in z")
    interpolate.add_argument("checkpoint", type=Path)
    interpolate.add_argument("--out", type=Path, default=Path("interpolation.png"))
    interpolate.add_argument("--rows", type=int, default=6)
    interpolate.add_argument("--steps", type=int, default=10)
    interpolate.add_argument("--seed", type=int, default=FIGURE_SEED)

    reconstruct = sub.add_parser("reconstruct", help="fit an encoder z = E(x) to G; write test digits beside G(E(x))")
    reconstruct.add_argument("checkpoint", type=Path)
    reconstruct.add_argument("--steps", type=int, default=2000, help="encoder training steps of 100 fresh pairs")
    reconstruct.add_argument("--out", type=Path, help="the picture (default reconstructions.png beside the checkpoint)")
    reconstruct.add_argument("--rows", type=int, default=10)
    reconstruct.add_argument("--seed", type=int, default=0)
    reconstruct.add_argument("--no-progress", action="store_true")
    _add_data_args(reconstruct)

    semisupervised = sub.add_parser("semisupervised",
                                    help="test accuracy of a linear classifier on D's features vs on pixels")
    semisupervised.add_argument("checkpoint", type=Path)
    semisupervised.add_argument("--labelled", type=_labelled_count, nargs="+", default=[100, 1000, None],
                                metavar="N", help="labelled training digits, each a number or 'all' "
                                                  "(default: 100 1000 all)")
    semisupervised.add_argument("--repeats", type=int, default=5, help="random labelled subsets for each N < all")
    semisupervised.add_argument("--backend", choices=backends, default="auto")
    semisupervised.add_argument("--no-progress", action="store_true")
    _add_data_args(semisupervised)

    toy = sub.add_parser("toy", help="Figure 1: the 1-D game, D against p_data/(p_data+p_g)")
    toy.add_argument("--out", type=Path, default=Path("toy.png"))
    toy.add_argument("--seed", type=int, default=0)
    toy.add_argument("--backend", choices=backends, default="auto")

    args = parser.parse_args(argv)
    if args.command == "info":
        from . import backends as backend_info

        print(backend_info.info())
        return 0
    return {"train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample, "interpolate": cmd_interpolate,
            "reconstruct": cmd_reconstruct, "semisupervised": cmd_semisupervised, "toy": cmd_toy}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
