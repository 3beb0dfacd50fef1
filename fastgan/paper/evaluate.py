"""The paper's Parzen-window evaluation (section 5, Table 1): fit a Gaussian Parzen window to generated
samples, choose its width sigma on a validation set, report the test set's mean log-likelihood with the
standard error of the mean.

As the released code (adversarial/parzen_ll.py, after Breuleux et al.) does it: sigma from
numpy.logspace(-1, 0, 10), the one with the highest mean validation log-likelihood wins, and the standard
error is the test log-likelihoods' standard deviation (ddof = 0, numpy's default) over sqrt(#test).

For conditional generators, class_agreement: how often a classifier trained on real digits names the class a
sample was drawn for.
"""
import dataclasses
import json
import math
from typing import List, Optional, Sequence

import torch
import torch.distributed
from torch import Tensor

from fastgan.nn import eval_mode
from fastgan.ops import check_tensor, parzen_log_density

__all__ = ["DEFAULT_SIGMAS", "ParzenResult", "class_agreement", "parzen_log_likelihood"]

# numpy.logspace(-1, 0, 10): 0.1 ... 1.0, the released code's cross-validation grid for MNIST.
DEFAULT_SIGMAS = tuple(10.0 ** (-1 + k / 9) for k in range(10))


@dataclasses.dataclass
class ParzenResult:
    """The Table-1 figure (mean +- se at the chosen sigma) and the whole sigma curve."""

    mean: float  # mean test log-likelihood (nats) at the chosen sigma
    se: float  # its standard error
    sigma: float  # the width chosen on the validation set
    sigmas: List[float]  # the grid searched
    valid_mean: List[float]  # mean validation log-likelihood per sigma (the selection criterion)
    test_mean: List[float]  # mean test log-likelihood per sigma
    test_se: List[float]  # its standard error per sigma
    n_samples: int  # Parzen centres (generated samples)
    n_valid: int
    n_test: int

    def summary(self) -> str:
        """One Table-1 style line, e.g. 'Parzen log-likelihood 225.1 +- 2.0 (sigma = 0.2154; ...)'."""
        return (f"Parzen log-likelihood {self.mean:.1f} \u00b1 {self.se:.1f} (sigma = {self.sigma:.4g} chosen on "
                f"{self.n_valid} validation points; {self.n_test} test points, {self.n_samples} samples)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def _flat(t, name, allow_empty=False):
    check_tensor(t, name, floating=False)
    if t.dim() < 2:
        raise ValueError(f"{name} must be [points, ...features], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    return t.flatten(1)


def _log_likelihoods(points, samples, sigmas, batch_size, progress, desc, **kwargs):
    """Sum and sum of squares (float64, per sigma) of the log-likelihoods of `points`, batch by batch."""
    total = torch.zeros(len(sigmas), dtype=torch.float64)
    total_sq = torch.zeros(len(sigmas), dtype=torch.float64)
    starts = range(0, points.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    with torch.no_grad():
        for start in starts:
            batch = points[start:start + batch_size].to(samples.device, samples.dtype)
            ll = parzen_log_density(batch, samples, sigmas, **kwargs).double().cpu()
            total += ll.sum(0)
            total_sq += (ll * ll).sum(0)
    return total, total_sq


def parzen_log_likelihood(samples: Tensor, valid: Tensor, test: Tensor, sigmas: Optional[Sequence[float]] = None, *,
                          batch_size: int = 1000, progress: bool = True, precision: Optional[str] = None,
                          backend: str = "auto", group=None) -> ParzenResult:
    """The paper's Parzen protocol: sigma chosen on `valid`, mean +- standard error on `test`.

    Args:
        samples: [M, ...] generated samples, the Parzen centres (flattened to [M, D]); with `group`, this
            rank's shard of them.
        valid: [Nv, ...] validation data, used only to choose sigma.
        test: [Nt, ...] test data, scored at every sigma.
        sigmas: the widths to search; default numpy.logspace(-1, 0, 10) (DEFAULT_SIGMAS).
        batch_size: validation/test points per kernel call (memory is O((batch + M) D)); may live on the CPU
            while samples are on the GPU: each batch is moved to samples' device.
        progress: show tqdm progress bars over the batches.
        precision, backend, group: passed to fastgan.ops.parzen_log_density.
    Returns:
        ParzenResult: .mean, .se, .sigma, the per-sigma curves; .summary() for a Table-1 line, .to_json().
    Raises:
        TypeError/ValueError for bad input (naming the argument), as parzen_log_density.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    samples = _flat(samples, "samples", allow_empty=group is not None)  # a rank's shard may be empty
    valid, test = _flat(valid, "valid"), _flat(test, "test")
    for t, name in ((valid, "valid"), (test, "test")):
        if t.shape[1] != samples.shape[1]:
            raise ValueError(f"{name} has {t.shape[1]} features per point but samples have {samples.shape[1]}")
    sigmas = list(DEFAULT_SIGMAS if sigmas is None else sigmas)
    kwargs = dict(precision=precision, backend=backend, group=group)

    valid_sum, _ = _log_likelihoods(valid, samples, sigmas, batch_size, progress, "Parzen validation", **kwargs)
    valid_mean = valid_sum / valid.shape[0]
    best = int(torch.argmax(valid_mean))
    test_sum, test_sq = _log_likelihoods(test, samples, sigmas, batch_size, progress, "Parzen test", **kwargs)
    n = test.shape[0]
    n_samples = torch.tensor([samples.shape[0]], device=samples.device)
    if group is not None:  # samples is this rank's shard
        torch.distributed.all_reduce(n_samples, group=group)
    test_mean = test_sum / n
    test_se = (test_sq / n - test_mean**2).clamp_min(0).sqrt() / math.sqrt(n)
    return ParzenResult(mean=float(test_mean[best]), se=float(test_se[best]), sigma=float(sigmas[best]),
                        sigmas=[float(s) for s in sigmas], valid_mean=valid_mean.tolist(),
                        test_mean=test_mean.tolist(), test_se=test_se.tolist(), n_samples=int(n_samples.item()),
                        n_valid=valid.shape[0], n_test=n)


@torch.no_grad()
def class_agreement(generator, classify, per_class: int = 100, seed: int = 0) -> Tensor:
    """For each class c of a conditional generator, the fraction of per_class samples G(z, c) that `classify`
    (images [N, D] -> scores [N, num_classes]) assigns to c: [num_classes] in [0, 1]; chance is 1 / num_classes."""
    if generator.num_classes == 0:
        raise ValueError("class_agreement needs a conditional generator (num_classes > 0)")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    labels = generator.balanced_labels(per_class * generator.num_classes)
    with eval_mode(generator):
        samples = generator.sample(len(labels), generator=torch.Generator().manual_seed(seed), labels=labels)
    hits = (classify(samples).argmax(1) == labels).double()
    return torch.zeros(generator.num_classes, dtype=torch.float64).index_add_(0, labels.cpu(), hits.cpu()) / per_class


# Evaluation noise has seeds of its own, apart from training's streams, so evaluating never changes a run.
PARZEN_SEED = 1234


def generator_log_likelihood(generator, splits, n_samples: int, *, backend: str = "auto", progress: bool = True,
                             group=None) -> ParzenResult:
    """The Parzen protocol on n_samples drawn from G (in eval mode) against splits.valid and splits.test.
    With a torch.distributed group, every rank draws the same samples (one seed) and keeps its contiguous
    share as Parzen centres: the result equals one process's."""
    with torch.no_grad(), eval_mode(generator):
        samples = generator.sample(n_samples, generator=torch.Generator().manual_seed(PARZEN_SEED))
    if group is not None:
        rank, world = torch.distributed.get_rank(group), torch.distributed.get_world_size(group)
        samples = samples[rank * n_samples // world:(rank + 1) * n_samples // world]
    return parzen_log_likelihood(samples, splits.valid.images, splits.test.images, progress=progress, backend=backend,
                                 group=group)


def pixel_class_agreement(generator, splits, per_class: int = 100, seed: int = 0) -> dict:
    """class_agreement under multinomial logistic regression on the training digits' pixels: its mean, per
    class, and the classifier's own test accuracy (how far to trust it)."""
    from .semisupervised import accuracy, fit_logistic_regression

    classifier = fit_logistic_regression(splits.train.images, splits.train.labels, generator.num_classes)
    agreement = class_agreement(generator, lambda x: classifier(x.double()), per_class, seed=seed)
    return dict(mean=agreement.mean().item(), per_class=agreement.tolist(), per_class_samples=per_class,
                classifier_test_accuracy=accuracy(classifier, splits.test.images, splits.test.labels))
