"""Algorithm 1 of the paper: k discriminator steps, then one generator step, by minibatch SGD.

The pieces, each its own module: the optimiser and its lr/momentum schedule (fastgan.paper.schedule), the
minibatch order (sampler), the process's share of the work (placement), checkpoint files (checkpoint) and the
loss, a fastgan.nn.GANLoss the trainer is given. Trainer is the loop, and what a long run needs: tqdm
progress, a JSONL metrics log, atomic checkpoints (every N steps, at the end, on Ctrl-C and SIGTERM) that
resume bit-identically (nets, optimisers, schedule, data order, the run's RNGs), and a stop with a clear
message when a loss turns NaN/inf, leaving the last good checkpoint in place.

Conditional nets (num_classes > 0) train on (image, label) pairs. The fakes of a D step take the real batch's
labels, and the G step the last real batch's: fakes and reals then have the same classes in every minibatch, so
the odds real:fake are 1 given any c and D's optimum is Proposition 1's p_data(x|c) / (p_data(x|c) + p_g(x|c))
class by class, whatever the data's class frequencies; and the labels cost no random numbers, so a run draws
the same data order and noise as an unconditional one.
"""
import contextlib
import dataclasses
import hashlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor

from fastgan.nn import GANLoss

from . import checkpoint
from .models import Discriminator, Generator, ModelConfig, check_labels
from .placement import Placement
from .sampler import BatchSampler
from .schedule import OPTIMIZERS, Schedule, make_optimizer

__all__ = ["CHECKPOINT_NAME", "PRESETS", "TrainConfig", "Trainer", "TrainingDiverged", "discriminator_loss",
           "generator_loss", "stop_on_signals"]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 100
    k: int = 1  # discriminator steps per generator step
    lr: float = 0.1
    lr_decay: float = 1.000004  # lr / lr_decay**step
    min_lr: float = 1e-6
    momentum_start: float = 0.5
    momentum_end: float = 0.7
    momentum_saturate_epoch: int = 250
    optimizer: str = "sgd"  # or "adam", whose beta1 follows the momentum schedule (beta2 0.999)
    saturating: bool = False  # G minimises log(1 - D(G(z))) (the minimax game) instead of -log D(G(z))
    steps: Optional[int] = None  # generator steps to train for, unless --steps/--minutes say otherwise
    minutes: Optional[float] = None  # and a wall-time cap
    checkpoint_every: int = 1000  # steps between checkpoints (and one at the end, always)
    log_every: int = 50
    seed: int = 0
    parzen_samples: int = 10_000  # generated samples for the Parzen estimate (the paper's 10k)
    dataset: str = "mnist"  # a key of fastgan.paper.data.DATASETS

    def __post_init__(self):
        for name in ("batch_size", "k", "log_every", "checkpoint_every", "parzen_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not self.lr_decay >= 1:
            raise ValueError(f"lr must be > 0 and lr_decay >= 1, got {self.lr} and {self.lr_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


# Both presets are the paper's nets and optimiser. mnist-quick stops after 6,000 steps (~1.5 minutes at the
# ~16 ms a step of a quiet 2-core CPU) and estimates the log-likelihood from 2,000 samples instead of 10,000,
# so its figures sit below a long run's. It has a step budget, not a time budget: cut short on a busy
# machine, a GAN stops in its early phase, where D wins and the log-likelihood first drops (measured: 468
# steps in 5 busy minutes gave -198, below the untrained -72). --minutes adds a time cap.
#
# The convolutional nets: D (d_conv_channels) is two 5x5 stride-2 convolutions to 32 and 64 maxout units of 2
# pieces, G (g_conv_channels) its mirror, z -> ReLU projection to 64 maps of 7 x 7 -> 5x5 stride-2 transposed
# convolutions to 32 maps of 14 x 14 (ReLU) and to the image; for CIFAR-10's 32 x 32 x 3 both are twice as wide (D
# 64, 128; G 128 maps of 8 x 8, then 64). The fully connected CIFAR-10 G and D are the MNIST ones widened to 3,072
# pixels. The paper gives no sizes for any of these, so they are ours. G's weights are U(+-0.15) (U(+-0.1) at
# CIFAR-10's doubled fan-ins, where 0.15 grows them to 1.8), which keeps the untrained G's pre-activations at a
# standard deviation of 0.5-1 in every layer: at the MLP's 0.05 they shrink to 0.025 at the output, and the pixels
# vary by 0.003 across z. The conv nets train with Adam (lr 2e-4, beta1 0.5, as DCGAN; Algorithm 1 allows any
# gradient-based rule): under the paper's SGD the conv D sat at D = 1/2 for ~250 steps, then won within ~100
# (D(G(z)) 0.02 or less) and G never recovered, at every lr, width and G we tried; under Adam D(G(z)) stays at
# 0.2-0.3 over mnist-conv's 6,000 steps, but with the MLP G it was mostly below 0.01 from step ~3,000 (Parzen -313
# against the conv G's -5; RESULTS.md). mnist-conv's step takes ~3x the MLP's.
_CONV = ModelConfig(d_conv_channels=(32, 64), d_pieces=2, g_hidden=(), g_conv_channels=(64, 32), g_init_range=0.15)
_CIFAR10 = ModelConfig(data_dim=3072, image_shape=(3, 32, 32))
_ADAM = {"optimizer": "adam", "lr": 2e-4, "momentum_start": 0.5, "momentum_end": 0.5}
_LONG = TrainConfig(steps=100_000, checkpoint_every=2000)
_LONG_CONV = dataclasses.replace(_LONG, **_ADAM)
PRESETS = {
    "mnist-paper": (ModelConfig(), _LONG),
    "mnist-quick": (ModelConfig(), TrainConfig(steps=6000, checkpoint_every=1000, parzen_samples=2000)),
    "mnist-conv": (_CONV, TrainConfig(steps=6000, checkpoint_every=1000, parzen_samples=2000, **_ADAM)),
    "fashion-mnist-mlp": (ModelConfig(), dataclasses.replace(_LONG, dataset="fashion-mnist")),
    "fashion-mnist-conv": (_CONV, dataclasses.replace(_LONG_CONV, dataset="fashion-mnist")),
    "cifar10-mlp": (_CIFAR10, dataclasses.replace(_LONG, dataset="cifar10")),
    "cifar10-conv": (dataclasses.replace(_CIFAR10, d_conv_channels=(64, 128), d_pieces=2, g_hidden=(),
                                         g_conv_channels=(128, 64), g_init_range=0.1),
                     dataclasses.replace(_LONG_CONV, dataset="cifar10")),
}


class TrainingDiverged(RuntimeError):
    """A loss or a parameter became NaN/inf; training stopped without overwriting the last good checkpoint."""


def _derived_seed(seed: int, stream: str, rank: int = 0) -> int:
    """A seed for one of a run's random streams, independent of its other streams and ranks."""
    digest = hashlib.sha256(f"{seed}/{stream}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@contextlib.contextmanager
def stop_on_signals():
    """Turns Ctrl-C (SIGINT) and SIGTERM into a request to stop between steps, so that the checkpoint written
    then never holds half a step; yields a list that is non-empty once one came. A second Ctrl-C interrupts
    at once. Off the main thread (where Python cannot install handlers) it yields a list that stays empty."""
    stop = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum, frame):
        signal.signal(signal.SIGINT, previous[signal.SIGINT])
        stop.append(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def discriminator_loss(loss: GANLoss, discriminator: Discriminator, real: Tensor, fake: Tensor,
                       real_labels: Optional[Tensor] = None, fake_labels: Optional[Tensor] = None, seeds=None):
    """loss.linear_discriminator on D's features of a real and a fake batch: one pass of D over both (one set
    of dropout masks), D's output layer fused into the loss. A conditional D takes each batch's labels; seeds:
    as Discriminator.features."""
    check_labels(real_labels, discriminator.num_classes, len(real), "real_labels")
    check_labels(fake_labels, discriminator.num_classes, len(fake), "fake_labels")
    labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
    h = discriminator.features(torch.cat([real, fake]), labels, seeds)
    output = discriminator.output
    return loss.linear_discriminator(h[:len(real)], h[len(real):], output.weight, output.bias)


def generator_loss(loss: GANLoss, discriminator: Discriminator, fake: Tensor, labels: Optional[Tensor] = None,
                   seeds=None):
    """loss.linear_generator on D's features of a fake batch, D's output layer fused into the loss."""
    h = discriminator.features(fake, labels, seeds)
    return loss.linear_generator(h, discriminator.output.weight, discriminator.output.bias)


class _RunLog:
    """What a run shows and writes as it goes: the tqdm bar, and every log_every steps the means of (d_loss,
    g_loss, D(x), D(G(z)), accuracy) since the last record, in the bar and as a line of metrics.jsonl."""

    NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_accuracy")

    def __init__(self, path: Optional[Path], total: Optional[int], initial: int, progress: bool):
        from tqdm.auto import tqdm

        self.file = open(path, "a") if path is not None else None
        self.bar = tqdm(total=total, initial=initial, disable=not progress, unit="step", dynamic_ncols=True)
        self.sums, self.count = torch.zeros(5, dtype=torch.float64), 0

    def add(self, d_loss, g_loss, stats) -> bool:
        """Adds a step (one host sync); False, and nothing added, if a loss is NaN/inf."""
        values = torch.stack([d_loss.double(), g_loss.double(), stats.d_real.double(), stats.d_fake.double(),
                              stats.accuracy.double()]).cpu()
        if not bool(torch.isfinite(values[:2]).all()):
            return False
        self.sums += values
        self.count += 1
        self.bar.update(1)
        return True

    def record(self, **fields):
        mean = dict(zip(self.NAMES, (self.sums / max(self.count, 1)).tolist()))
        self.sums.zero_()
        self.count = 0
        self.bar.set_postfix(D=f"{mean['d_loss']:.3f}", G=f"{mean['g_loss']:.3f}", Dx=f"{mean['d_real']:.2f}",
                             DGz=f"{mean['d_fake']:.2f}")
        if self.file is not None:
            self.file.write(json.dumps({**fields, **mean}) + "\n")
            self.file.flush()

    def close(self):
        self.bar.close()
        if self.file is not None:
            self.file.close()


class _RandomStreams:
    """A run's own random streams, seeded from its seed: data order and noise from `data`, dropout seeds from
    `dropout` (one stream per rank). The global RNG is never touched."""

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank = seed, rank
        self.data = torch.Generator().manual_seed(seed)
        self.dropout = torch.Generator().manual_seed(_derived_seed(seed, "dropout", rank))

    def dropout_seeds(self, n: int):
        return torch.randint(0, 2**63 - 1, (n,), generator=self.dropout).tolist()

    def state_dict(self) -> dict:
        return {"data_rng": self.data.get_state(), "dropout_rng": self.dropout.get_state()}

    def load_state_dict(self, state: dict, step: int, world_size: int):
        self.data.set_state(state["data_rng"])
        # checkpoints before dropout_rng drew the seeds from the global generator, whose state they hold
        self.dropout.set_state(state["dropout_rng"] if "dropout_rng" in state else state["rng"]["torch"])
        if world_size > 1:  # the checkpoint holds rank 0's dropout stream
            self.dropout.manual_seed(_derived_seed(self.seed, f"dropout@{step}", self.rank))


def _finite(*modules) -> bool:
    return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())


def _diverged(step: int, what: str, last_checkpoint_step: Optional[int]) -> TrainingDiverged:
    kept = (f"the last good checkpoint (step {last_checkpoint_step}) is kept"
            if last_checkpoint_step is not None else "no checkpoint was written")
    return TrainingDiverged(f"training diverged at step {step}: {what}; stopped, {kept}. "
                            "Try a lower --lr or the non-saturating generator loss.")


def _check_inputs(generator, discriminator, train_images, train_labels, config, placement):
    if train_images.dim() != 2 or len(train_images) < config.batch_size:
        raise ValueError(f"train_images must be [N >= batch_size={config.batch_size}, D], "
                         f"got shape {tuple(train_images.shape)}")
    if generator.num_classes != discriminator.num_classes:
        raise ValueError(f"generator and discriminator disagree on num_classes: {generator.num_classes} "
                         f"and {discriminator.num_classes}")
    check_labels(train_labels, generator.num_classes, len(train_images), "train_labels")
    if config.batch_size % placement.world_size:
        raise ValueError(f"batch_size {config.batch_size} must divide evenly over {placement.world_size} processes")


class Trainer:
    """Trains (generator, discriminator) on train_images [N, D] with Algorithm 1, minimising `loss` (a
    fastgan.nn.GANLoss; default: config.saturating's, fused with D's output layer); conditional nets also
    take train_labels [N], class indices.

    The run owns its random streams (_RandomStreams), seeded from config.seed and saved in checkpoints.
    out_dir (optional) receives checkpoint.pt and metrics.jsonl. Inside an initialised torch.distributed group,
    each rank trains on its shard of every batch (fastgan.paper.placement); give out_dir to rank 0.
    Resume is bit-identical in one process; with several, dropout is re-seeded per rank.
    """

    def __init__(self, generator: Generator, discriminator: Discriminator, train_images: Tensor,
                 config: TrainConfig = TrainConfig(), loss: Optional[GANLoss] = None,
                 out_dir: Union[str, Path, None] = None, extra_state=None, train_labels: Optional[Tensor] = None,
                 compile: bool = False, placement: Optional[Placement] = None):
        self.placement = placement or Placement()
        _check_inputs(generator, discriminator, train_images, train_labels, config, self.placement)
        self.generator, self.discriminator = generator, discriminator
        self.train_images, self.train_labels = train_images, train_labels
        self.config = config
        # the trainer checks both losses once a step, so the op's own NaN check (a host sync) is off
        self.loss = loss or GANLoss(saturating=config.saturating, backend=discriminator.backend, return_stats=True,
                                    check_finite=False)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.extra_state = extra_state or {}  # saved alongside, e.g. the preset and data source for `evaluate`
        self.schedule = Schedule(config)
        self.g_optimizer = make_optimizer(generator.parameters(), config)
        self.d_optimizer = make_optimizer(discriminator.parameters(), config)
        self.rng = _RandomStreams(config.seed, self.placement.rank)
        self.sampler = BatchSampler(len(train_images), config.batch_size, self.rng.data)
        self.step = 0  # generator steps taken
        self.elapsed = 0.0  # training seconds over all sessions
        self.last_checkpoint_step = None
        # compile: both losses (G and D forward, the fused ops and their backward) under torch.compile; the
        # dropout seeds come in as arguments, so there is one graph each and no graph break.
        self._d_loss = torch.compile(self._discriminator_loss) if compile else self._discriminator_loss
        self._g_loss = torch.compile(self._generator_loss) if compile else self._generator_loss

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    # --- Algorithm 1 ----------------------------------------------------------------------------------------

    def _minibatch(self):
        """This rank's share of the next real minibatch (images, labels; labels None when unconditional)."""
        indices = self.sampler.next()
        labels = None if self.train_labels is None else self.train_labels[indices]
        return self.placement.shard(self.train_images[indices]), self.placement.shard(labels)

    def _noise(self):
        return self.placement.shard(self.generator.noise(self.config.batch_size, self.rng.data))

    def _discriminator_loss(self, real, labels, noise, seeds):
        with torch.no_grad():
            fake = self.generator(noise, labels)
        return discriminator_loss(self.loss, self.discriminator, real, fake, labels, labels, seeds)

    def _generator_loss(self, noise, labels, seeds):
        return generator_loss(self.loss, self.discriminator, self.generator(noise, labels), labels, seeds)[0]

    def train_step(self):
        """One iteration of Algorithm 1. Returns (d_loss, g_loss, DStats) as tensors (no host sync)."""
        self.schedule.apply((self.g_optimizer, self.d_optimizer), self.step, self.epoch)
        masks = self.discriminator.dropout_layers  # dropout seeds a pass of D takes
        for _ in range(self.config.k):  # k steps of D on a real minibatch and a noise minibatch
            real, labels = self._minibatch()
            d_loss, stats = self._d_loss(real, labels, self._noise(), self.rng.dropout_seeds(masks))
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.placement.average_gradients(self.discriminator.parameters())
            self.d_optimizer.step()
        # one step of G on a noise minibatch (with the last real batch's labels); the gradients of G's
        # parameters only: D's are not needed in this step
        g_loss = self._g_loss(self._noise(), labels, self.rng.dropout_seeds(masks))
        params = list(self.generator.parameters())
        for p, grad in zip(params, torch.autograd.grad(g_loss, params)):
            p.grad = grad
        self.placement.average_gradients(params)
        self.g_optimizer.step()
        self.step += 1
        return d_loss.detach(), g_loss.detach(), stats

    # --- checkpoints ----------------------------------------------------------------------------------------

    def state_dict(self):
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "step": self.step, **self.sampler.state_dict(), "elapsed": self.elapsed,
            **self.rng.state_dict(),
            "train_config": dataclasses.asdict(self.config),
            **self.extra_state,
        }

    def load_state_dict(self, state):
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.sampler.load_state_dict(state)
        self.rng.load_state_dict(state, self.step, self.placement.world_size)
        self.last_checkpoint_step = self.step

    def save_checkpoint(self, path: Union[str, Path, None] = None) -> Path:
        """Atomically write the full training state; refuses (TrainingDiverged) if a parameter is NaN/inf."""
        path = Path(path) if path is not None else self._require_out_dir() / CHECKPOINT_NAME
        if not _finite(self.generator, self.discriminator):
            raise _diverged(self.step, "a parameter is NaN/inf", self.last_checkpoint_step)
        checkpoint.save(self.state_dict(), path, "gan")
        self.last_checkpoint_step = self.step
        return path

    def _require_out_dir(self) -> Path:
        if self.out_dir is None:
            raise ValueError("out_dir is None: pass a checkpoint path or make the Trainer with out_dir")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir

    # --- the loop -------------------------------------------------------------------------------------------

    def run(self, steps: Optional[int] = None, minutes: Optional[float] = None, progress: bool = True) -> str:
        """Train until `steps` total generator steps or `minutes` of wall time (whichever comes first).

        Returns "done", or "interrupted" after Ctrl-C or SIGTERM (a checkpoint is saved either way when
        out_dir is set). Raises TrainingDiverged on a NaN/inf loss.
        """
        if steps is None and minutes is None:
            raise ValueError("give steps or minutes (or both)")
        deadline = time.monotonic() + 60 * minutes if minutes is not None else math.inf
        log = _RunLog(self._require_out_dir() / METRICS_NAME if self.out_dir is not None else None, steps,
                      self.step, progress)
        started = time.monotonic()
        try:
            with stop_on_signals() as stop:
                while (steps is None or self.step < steps) and time.monotonic() < deadline and not stop:
                    d_loss, g_loss, stats = self.train_step()
                    if not log.add(d_loss, g_loss, stats):
                        raise _diverged(self.step, f"D loss {d_loss.item()}, G loss {g_loss.item()}",
                                        self.last_checkpoint_step)
                    if self.step % self.config.log_every == 0:
                        log.record(step=self.step, epoch=self.epoch, lr=self.schedule.learning_rate(self.step),
                                   momentum=self.schedule.momentum(self.epoch),
                                   elapsed_s=round(self.elapsed + time.monotonic() - started, 3))
                    if self.out_dir is not None and self.step % self.config.checkpoint_every == 0:
                        self.elapsed += time.monotonic() - started
                        started = time.monotonic()
                        self.save_checkpoint()
        finally:
            log.close()
        self.elapsed += time.monotonic() - started
        if self.out_dir is not None:
            path = self.save_checkpoint()
            if stop:
                print(f"{stop[0]}: stopped at step {self.step}; saved {path} (continue with --resume)")
        return "interrupted" if stop else "done"
