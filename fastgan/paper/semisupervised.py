"""Semi-supervised learning with the discriminator's features (section 7 of the paper, extension 4).

Each hidden layer of a trained D (its maxout units, dropout off) is a representation learnt from unlabelled
digits. A linear classifier on it, trained with only n labels, is compared with the same classifier on raw
pixels. The classifier is multinomial logistic regression fitted by full-batch L-BFGS in float64 (deterministic);
inputs are standardised with the whole training split's mean and deviation (unlabelled data is fair to use),
and its L2 weight is chosen from WEIGHT_DECAYS on the validation split.
"""
from typing import List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from fastgan.nn import eval_mode
from fastgan.ops import check_tensor

from .data import Split
from .models import Discriminator, check_labels

__all__ = ["WEIGHT_DECAYS", "ProbeResult", "accuracy", "discriminator_features", "fit_logistic_regression",
           "linear_probe", "probe_accuracies"]

# L2 weights searched on the validation split: the best one depends on the inputs and on n (on the offline subset's
# pixels: 1e-4 at n = 100, 1e-1 at n = 1000, 1e-2 at all).
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


class ProbeResult(NamedTuple):
    accuracy: float  # on the test split
    weight_decay: float  # the L2 weight chosen on the validation split


@torch.no_grad()
def discriminator_features(discriminator: Discriminator, images: Tensor,
                           batch_size: int = 1000) -> List[Tensor]:
    """D's hidden features of images [N, data_dim], one [N, units] per hidden layer (bottom first), in eval mode
    (no dropout)."""
    if discriminator.num_classes:
        raise ValueError("the discriminator is conditional: its features need the labels the classifier predicts")
    with eval_mode(discriminator):
        batches = [discriminator.layer_features(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return [torch.cat(layer) for layer in zip(*batches)]


def _check_xy(x, y, num_classes, name):
    check_tensor(x, f"{name} inputs")
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"{name} inputs must be [N > 0, features], got shape {tuple(x.shape)}")
    check_labels(y, num_classes, len(x), f"{name} labels")


def fit_logistic_regression(x: Tensor, y: Tensor, num_classes: int, weight_decay: float = 1e-3,
                            max_iter: int = 200) -> nn.Linear:
    """Multinomial logistic regression: argmin over (W, b) of mean cross-entropy + weight_decay/2 |W|^2 on
    x [N, F] and labels y [N] in [0, num_classes), by full-batch L-BFGS in float64. Returns nn.Linear(F, classes)."""
    _check_xy(x, y, num_classes, "training")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    x = x.double()
    classifier = nn.Linear(x.shape[1], num_classes, dtype=torch.float64)
    nn.init.zeros_(classifier.weight)  # the loss is convex: start from zero, so no random numbers are drawn
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.LBFGS(classifier.parameters(), max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(classifier(x), y) + weight_decay / 2 * classifier.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return classifier.requires_grad_(False)


def accuracy(classifier: nn.Linear, x: Tensor, y: Tensor) -> float:
    """Fraction of rows of x whose highest-scoring class is their label y."""
    return (classifier(x.double()).argmax(1) == y).double().mean().item()


def linear_probe(train: Split, valid: Split, test: Split, n_labelled: Optional[int] = None, seed: int = 0,
                 num_classes: int = 10, weight_decays: Sequence[float] = WEIGHT_DECAYS) -> ProbeResult:
    """Test accuracy of logistic regression on `n_labelled` training examples (a random subset drawn with
    `seed`; None: all of them). Each Split's images are the inputs, of any width (features or pixels)."""
    for split, name in ((train, "train"), (valid, "valid"), (test, "test")):
        _check_xy(split.images, split.labels, num_classes, name)
    n = len(train.images)
    if n_labelled is not None and not 1 <= n_labelled <= n:
        raise ValueError(f"n_labelled must be in [1, {n}] (the training split's size), got {n_labelled}")
    mean, scale = train.images.double().mean(0), train.images.double().std(0).clamp_min(1e-6)  # constant pixels -> 0
    x_train, x_valid, x_test = ((s.images.double() - mean) / scale for s in (train, valid, test))
    chosen = torch.arange(n) if n_labelled is None else torch.randperm(
        n, generator=torch.Generator().manual_seed(seed))[:n_labelled]
    fits = [fit_logistic_regression(x_train[chosen], train.labels[chosen], num_classes, wd) for wd in weight_decays]
    best = max(range(len(fits)), key=lambda i: accuracy(fits[i], x_valid, valid.labels))
    return ProbeResult(accuracy(fits[best], x_test, test.labels), weight_decays[best])


def probe_accuracies(discriminator: Discriminator, splits, labelled: Sequence[Optional[int]], repeats: int,
                     num_classes: int, progress: bool = True) -> dict:
    """Test accuracies (%) of linear_probe on each hidden layer of D and on the pixels, for every n in
    `labelled` (None: all training digits) over `repeats` random labelled subsets (one for all):
    {input name: (features, {n: [accuracy, ...]})}, inputs in the order D layer 1, 2, ..., pixels."""
    from tqdm.auto import tqdm

    features = [discriminator_features(discriminator, split.images) for split in splits[:3]]  # [split][layer]
    inputs = {f"D layer {i + 1}": [Split(layers[i], split.labels) for layers, split in zip(features, splits[:3])]
              for i in range(len(discriminator.hidden))}
    inputs["pixels"] = list(splits[:3])
    table = {name: (train.images.shape[1], {n: [] for n in labelled}) for name, (train, _, _) in inputs.items()}
    runs = [(n, seed) for n in labelled for seed in range(1 if n is None else repeats)]
    for n, seed in tqdm(runs, disable=not progress, unit="subset", desc="fitting"):
        for name, (train, valid, test) in inputs.items():
            result = linear_probe(train, valid, test, n, seed=seed, num_classes=num_classes)
            table[name][1][n].append(100 * result.accuracy)
    return table
