"""python -m fastgan reconstruct: section 7's learned approximate inference, an encoder z = E(x) fitted to G."""
from pathlib import Path

from .common import (add_checkpoint_arg, add_data_args, add_progress_arg, checkpoint_data, non_negative_int,
                     positive_int, writable_file)

HELP = "fit an encoder z = E(x) to G; write test digits beside G(E(x))"


def add_arguments(parser):
    add_checkpoint_arg(parser)
    parser.add_argument("--steps", type=positive_int, default=2000, help="encoder training steps of 100 fresh pairs")
    parser.add_argument("--out", type=Path, help="the picture (default reconstructions.png beside the checkpoint)")
    parser.add_argument("--rows", type=positive_int, default=10)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    add_progress_arg(parser)
    add_data_args(parser)


def run(args) -> int:
    import torch

    from .. import checkpoint
    from ..inference import Encoder, fit_encoder, latent_error, reconstruction_error
    from ..viz import reconstruction_figure

    state, generator, _ = checkpoint.load_models(args.checkpoint, "torch")
    out = writable_file(args.out or args.checkpoint.with_name("reconstructions.png"), "--out")
    encoder_path = writable_file(args.checkpoint.with_name("encoder.pt"), "the encoder file")
    splits = checkpoint_data(args, state)
    with torch.random.fork_rng(devices=[]):  # the encoder's initial weights, without touching the global RNG
        torch.manual_seed(args.seed)
        encoder = Encoder(generator.data_dim, generator.noise_dim)
    print(f"fitting an encoder z = E(x) to the generator of {args.checkpoint} (step {state['step']}): "
          f"{args.steps} steps on fresh (G(z), z) pairs")
    untrained = latent_error(encoder, generator, seed=args.seed + 1)
    fit_encoder(encoder, generator, args.steps, seed=args.seed, progress=not args.no_progress)
    trained = latent_error(encoder, generator, seed=args.seed + 1)
    print(f"latent error |E(G(z)) - z|^2 per dimension on 1000 fresh pairs: {untrained:.3f} untrained, "
          f"{trained:.3f} trained (predicting z = 0 scores 1)")
    checkpoint.save(dict(encoder=encoder.state_dict(), encoder_config=encoder.config(), steps=args.steps,
                         checkpoint=str(args.checkpoint), checkpoint_step=state["step"]), encoder_path, "encoder")
    test = splits.test
    reconstructions, error = reconstruction_error(encoder, generator, test.images, test.labels)
    baseline = (splits.train.images.mean(0) - test.images).square().mean().item()
    print(f"reconstruction error |G(E(x)) - x|^2 per pixel on the {len(test.images)} test digits: {error:.4f} "
          f"(the mean training digit scores {baseline:.4f})")
    figure = reconstruction_figure(test.images[:args.rows * 6], reconstructions[:args.rows * 6], out,
                                   image_shape=generator.image_shape)
    print(f"wrote {figure} (each test digit, then G(E(x))), {encoder_path}")
    return 0
